{#-
    The snapshot materialization for Spark with Parquet tables. dbt-spark's own snapshot needs Delta,
    Iceberg or Hudi (it updates the table with MERGE INTO), and none of them is available without
    downloading their jars. This is dbt-spark's materialization with one change: instead of a MERGE, the
    new version of the table is written as a whole (the old rows, with dbt_valid_to set on the versions
    the staging relation closes, plus the inserted versions), then swapped in (drop, rename). The table is
    small: one row per customer version. Semantics (check strategy, hard_deletes, column names) come from
    dbt's own snapshot_staging_table, as on every adapter.
-#}
{% materialization snapshot, adapter='spark' %}

  {%- set target_table = model.get('alias', model.get('name')) -%}
  {%- set strategy_name = config.get('strategy') -%}
  {%- set file_format = config.get('file_format') or 'parquet' -%}
  {%- set grant_config = config.get('grants') -%}

  {% set target_relation_exists, target_relation = get_or_create_relation(
          database=none,
          schema=model.schema,
          identifier=target_table,
          type='table') -%}

  {%- if file_format != 'parquet' -%}
    {% do exceptions.raise_compiler_error("segfit's Spark snapshot writes Parquet tables; file_format is " ~ file_format) %}
  {%- endif -%}

  {% if not adapter.check_schema_exists(model.database, model.schema) %}
    {% do create_schema(model.schema) %}
  {% endif %}

  {%- if not target_relation.is_table -%}
    {% do exceptions.relation_wrong_type(target_relation, 'table') %}
  {%- endif -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% set strategy_macro = strategy_dispatch(strategy_name) %}
  {% set strategy = strategy_macro(model, "snapshotted_data", "source_data", model['config'], target_relation_exists) %}

  {% if not target_relation_exists %}

      {% set build_sql = build_snapshot_table(strategy, model['compiled_code']) %}
      {% call statement('main') %}
          {{ create_table_as(False, target_relation, build_sql) }}
      {% endcall %}

  {% else %}

      {% set columns = config.get("snapshot_table_column_names") or get_snapshot_table_column_names() %}
      {{ adapter.valid_snapshot_target(target_relation, columns) }}

      {% set staging_table = spark_build_snapshot_staging_table(strategy, sql, target_relation) %}

      {% set missing_columns = adapter.get_missing_columns(staging_table, target_relation)
                                   | rejectattr('name', 'equalto', 'dbt_change_type')
                                   | rejectattr('name', 'equalto', 'DBT_CHANGE_TYPE')
                                   | rejectattr('name', 'equalto', 'dbt_unique_key')
                                   | rejectattr('name', 'equalto', 'DBT_UNIQUE_KEY')
                                   | list %}
      {% do create_columns(target_relation, missing_columns) %}

      {% set target_columns = adapter.get_columns_in_relation(target_relation) %}
      {% set new_relation = target_relation.incorporate(path={"identifier": target_table ~ '__segfit_new'}) %}
      {% do adapter.drop_relation(new_relation) %}

      {% set rebuilt_sql %}
          select
          {%- for column in target_columns %}
              {% if column.name == columns.dbt_valid_to -%}
                  case
                      when closing.{{ columns.dbt_scd_id }} is not null
                          then closing.{{ columns.dbt_valid_to }}
                      else existing.{{ adapter.quote(column.name) }}
                  end as {{ adapter.quote(column.name) }}
              {%- else -%}
                  existing.{{ adapter.quote(column.name) }}
              {%- endif %}{{ ',' if not loop.last }}
          {%- endfor %}
          from {{ target_relation }} as existing
          left join (
              select {{ columns.dbt_scd_id }}, {{ columns.dbt_valid_to }}
              from {{ staging_table }}
              where dbt_change_type in ('update', 'delete')
          ) as closing
              on existing.{{ columns.dbt_scd_id }} = closing.{{ columns.dbt_scd_id }}
                  and existing.{{ columns.dbt_valid_to }} is null
          union all
          select
          {%- for column in target_columns %}
              {{ adapter.quote(column.name) }}{{ ',' if not loop.last }}
          {%- endfor %}
          from {{ staging_table }}
          where dbt_change_type = 'insert'
      {% endset %}

      {% call statement('main') %}
          {{ create_table_as(False, new_relation, rebuilt_sql) }}
      {% endcall %}
      {% do post_snapshot(staging_table) %}
      {% do adapter.drop_relation(target_relation) %}
      {% do adapter.rename_relation(new_relation, target_relation) %}

  {% endif %}

  {% set should_revoke = should_revoke(target_relation_exists, full_refresh_mode) %}
  {% do apply_grants(target_relation, grant_config, should_revoke) %}
  {% do persist_docs(target_relation, model) %}

  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
