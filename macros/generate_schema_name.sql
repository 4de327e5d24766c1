{#- Models land in the schema named in their config (staging, intermediate, marts, raw), with no
    target prefix: BI tools and the report query marts.<name> on every target. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
