"""A stratified sample of a large mart, drawn in SQL so that only the sample reaches pandas."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from python_analysis.errors import SegfitError

from .connections import bounded_read_only
from .reading import fetch_frame

# stratified sample of a large mart, for fitting heavy models with bounded memory (see read_stratified_sample)
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def read_stratified_sample(path: Path, table: str = "customer_segment_fit", *, max_rows: int = 200_000,
                           strata: tuple[str, ...] = ("profitability_segment", "is_classification_anomaly"),
                           key: str = "customer_record_id", seed: int = 0
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """At most ``max_rows`` rows of ``marts.<table>``, sampled in SQL so that only the sample reaches pandas.

    Stratified: each stratum (a combination of ``strata`` values, null included) keeps
    ``ceil(max_rows * stratum_rows / all_rows)`` of its rows, so every stratum - a rare anomaly group of a
    small segment too - is present in proportion, with at least one row. Within a stratum the rows with
    the smallest ``hash(key, seed)`` are kept: the same warehouse and seed give the same sample. When the
    table has at most ``max_rows`` rows, all of it is returned. Returns (sample, strata table) where the
    strata table has, per stratum, ``population_rows`` and ``sample_rows``: what a report states next to a
    figure computed from the sample (the sum of ``sample_rows`` can exceed ``max_rows`` by at most the
    number of strata, from rounding up).
    Long: one SQL sampling query and its checks (#11).
    """
    for name in (table, key, *strata):
        if not _NAME.fullmatch(name):
            raise SegfitError(f"bad table or column name {name!r}")
    if max_rows < 1:
        raise SegfitError("max_rows must be >= 1")
    relation = f"marts.{table}"
    by = ", ".join(strata) or "1"
    partition = f"partition by {by}" if strata else ""
    # names are checked above; numbers are bound as parameters
    # the window runs over the key and strata columns only; the wide rows are joined back for the sample
    sql = f"""
        with ranked as (
            select {key} as _key,
                count(*) over ({partition}) as _stratum_rows,
                count(*) over () as _all_rows,
                row_number() over ({partition} order by hash({key}, ?::bigint), {key}) as _rank
            from {relation}
        ),
        chosen as (
            select _key from ranked
            where _all_rows <= ? or _rank <= ceil(? * _stratum_rows / _all_rows)
        )
        select src.*
        from {relation} as src
        inner join chosen on src.{key} = chosen._key
        order by src.{key}
    """  # noqa: S608
    strata_sql = f"""
        select {', '.join(strata) + ',' if strata else ''} count(*) as population_rows
        from {relation} {'group by ' + by if strata else ''}
    """  # noqa: S608
    with bounded_read_only(path, "segfit-sample-spill-") as con:
        sample = fetch_frame(con, sql, [seed, max_rows, max_rows])
        population = con.execute(strata_sql).df()
    if strata:
        taken = sample.groupby(list(strata), dropna=False).size().rename("sample_rows").reset_index()
        population = population.merge(taken, on=list(strata), how="left")
    else:
        population["sample_rows"] = len(sample)
    population["sample_rows"] = population["sample_rows"].fillna(0).astype("int64")
    return sample, population
