"""warehouse.fetch_frame reads through Arrow and gives the frame DuckDB's own fetch_df gives: the same values and
the same dtypes (nullable integers and booleans, dates as datetime64, decimals as float64, text as the pandas
string dtype, object text when empty). Expected frames come from DuckDB's fetch_df on the same query."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from python_analysis.warehouse.reading import fetch_frame

QUERY = """
select * from (values
  (1::bigint, 1::bigint, 1::integer, null::integer, 7::smallint, true, null::boolean, 'a', null::varchar,
   timestamp '2020-01-01 10:00', null::timestamp, date '2020-01-01', 1.5::decimal(10, 2), 1.5::double, null::double,
   3::ubigint, 'é'),
  (2::bigint, null::bigint, 2::integer, 3::integer, null::smallint, false, true, 'b', 'x',
   null::timestamp, timestamp '2020-01-01', null::date, null::decimal(10, 2), null::double, 2.0::double,
   null::ubigint, '')
) t(i, i_null, i32, i32_null, i16_null, b, b_null, s, s_null, ts, ts_null, d, dec, f, f_null, u_null, s_utf8)
"""


def _duckdb_frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    return con.execute(sql).df()


@pytest.mark.parametrize("where", ["", " where i = 2", " where i = 1", " where false"])
def test_fetch_frame_equals_duckdbs_fetch_df(where):
    with duckdb.connect() as con:
        expected = _duckdb_frame(con, QUERY + where)
        got = fetch_frame(con, QUERY + where)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_fetch_frame_binds_parameters_and_spans_batches():
    with duckdb.connect() as con:
        sql = "select range as n, range::varchar as s, case when range % 7 = 0 then null else range end as m " \
              "from range(?) order by n"
        expected = con.execute(sql, [5000]).df()
        got = fetch_frame(con, sql, [5000], rows_per_batch=1024)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_read_tables_orders_rows_as_duckdbs_order_by(tmp_path):
    """``read_tables(order_by=)`` sorts the Arrow result (a stable sort, nulls last) instead of asking DuckDB to
    sort the wide rows: the frame equals DuckDB's ``order by`` result (fetch_df), over several batches, with
    rows stored out of order, a null key and every column type of QUERY."""
    from python_analysis.warehouse.reading import read_tables

    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        rows = (f"select q.* exclude (i), k.key, k.key * 2 as twice "  # noqa: S608 - the test's own text
                f"from (select (range * 7919) % 5003 as key from range(5003)) k "
                f"cross join ({QUERY}) q where q.i = 1 + k.key % 2")
        con.execute(f"create table marts.t as {rows} limit 0")
        con.execute("insert into marts.t (key, s) values (null, 'null key')")  # stored first, read last
        con.execute(f"insert into marts.t {rows}")
        expected = con.execute("select * from marts.t order by key").df()
    got = read_tables(path, {"t": "marts.t"}, order_by={"t": "key"})["t"]
    assert got["key"].iloc[:-1].is_monotonic_increasing and pd.isna(got["key"].iloc[-1])
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    unordered = read_tables(path, {"t": "marts.t"})["t"]
    assert pd.isna(unordered["key"].iloc[0]) and not unordered["key"].iloc[1:].is_monotonic_increasing  # stored
    # out of order: the sort is what the test sees
