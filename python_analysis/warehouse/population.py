"""The fit mart of a large build, read in bounded memory: the report's every-record figures without the whole
mart in pandas (#11).

On data the report samples (``sampling.is_large``) and above ``BOUNDED_READ_RECORDS`` (``read_bounded``), the
report holds only a few narrow columns of ``customer_segment_fit`` for every record (``BASE_COLUMNS``: the keys,
the segment, the anomaly flag, retention; the run's threshold too when the build has no metadata). Every other column is read when a figure needs it, a few at a time (``Population.frame``), the
analysis sample's whole rows are read by their ``source_row_number`` (``Population.rows``), the written-back
scores are computed over bounded row chunks (``Population.chunks``), and the data profile is computed in SQL
(``profile.data_profile_sql``). Every frame given out is exactly what the whole-mart read
(``reading.read_marts``) gives for those rows and columns: the same values, order (``source_row_number``) and
dtypes, so the report's figures do not change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from python_analysis.errors import SegfitError

from .connections import bounded_read_only
from .reading import _quoted, arrow_to_frame

RELATION = "marts.customer_segment_fit"
ORDER = "source_row_number"
# what the report reads for every record besides the columns it asks for (``Population.frame``)
BASE_COLUMNS = ("customer_record_id", "customer_id", "profitability_segment", "is_classification_anomaly",
                "retention_probability")
# the columns read together for every record (``Population.frame``, ``columns_per_read``): about this many bytes
READ_BUDGET_BYTES = 128 * 2**20
_SPILL = "segfit-population-spill-"
# above this many records (and only when the report samples, ``sampling.is_large``) the fit mart is read in
# bounded memory; at or below it whole, which costs less CPU (about 3 s less at 1M records: every column is
# read once) and fits the memory target (1.58 GB at 1M records, growing about 1.15 GB per million).
# ``SEGFIT_BOUNDED_READ_RECORDS`` overrides it.
BOUNDED_READ_RECORDS = 1_500_000
MEMORY_LIMIT = "128MB"  # DuckDB's memory limit for these reads (``Population._connection``)
CHUNK_ROWS = 50_000  # at most this many rows per chunk (``Population.chunks``)


def _bytes(setting: str) -> float:
    """A DuckDB memory setting ('953.6 MiB', '1.0 GiB') in bytes."""
    number, _, unit = setting.strip().partition(" ")
    scale = {"B": 1, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "KB": 1e3, "MB": 1e6, "GB": 1e9,
             "TB": 1e12}
    return float(number) * scale.get(unit.strip().upper(), 1)


def read_bounded(records: int) -> bool:
    """Is a fit mart of ``records`` records (one the report samples) read in bounded memory: more than
    ``BOUNDED_READ_RECORDS`` (or ``SEGFIT_BOUNDED_READ_RECORDS``, a whole number)?"""
    setting = os.environ.get("SEGFIT_BOUNDED_READ_RECORDS", "").strip()
    if setting and not setting.isdigit():
        raise SegfitError(f"SEGFIT_BOUNDED_READ_RECORDS must be a whole number of records, got {setting!r}")
    return records > (int(setting) if setting else BOUNDED_READ_RECORDS)


class Population:
    """Every record of the fit mart at ``path``, held as ``base`` (``BASE_COLUMNS``, in ``source_row_number``
    order) and read column-wise on demand. Reads use the insertion order of the table (DuckDB's
    ``preserve_insertion_order``) and put the rows in ``source_row_number`` order with one permutation."""

    def __init__(self, path: Path, extra_base: Sequence[str] = ()) -> None:
        self.path = path
        with self._connection() as con:
            names = con.execute("select column_name from information_schema.columns where table_schema = 'marts' "
                                "and table_name = 'customer_segment_fit' order by ordinal_position").fetchall()
            self.columns: tuple[str, ...] = tuple(r[0] for r in names)
            keys = con.sql(f"select {ORDER} from {RELATION}").to_arrow_table()  # noqa: S608 - fixed names
        # the rows' order: a stable sort of the insertion-order keys, nulls last (ORDER BY in DuckDB)
        self._order = pc.sort_indices(keys, sort_keys=[(ORDER, "ascending", "at_end")])
        self._keys = keys.column(0).combine_chunks()
        del keys
        n = len(self._order)
        self._identity = bool(pc.all(pc.equal(self._order, pa.array(np.arange(n)))).as_py()) if n else True
        # the keys in source_row_number order, when unique and never null: a chunk read in any order finds its
        # records' positions by them (``chunks``)
        ordered = self._keys.take(self._order)
        self._sorted_keys = None
        if not ordered.null_count and (n < 2 or bool(pc.all(pc.greater(ordered.slice(1), ordered.slice(0, n - 1)))
                                                     .as_py())):
            self._sorted_keys = ordered.to_numpy()
        del ordered
        base = [c for c in dict.fromkeys([*BASE_COLUMNS, *extra_base]) if c in self.columns]
        self.base = pd.DataFrame(index=pd.RangeIndex(n))
        for name in base:  # one column at a time: the read's transient memory is one column's
            self.base[name] = self._read([name])[name]

    def __len__(self) -> int:
        return len(self._order)

    def columns_per_read(self) -> int:
        """How many numeric columns ``frame`` reads together within ``READ_BUDGET_BYTES``."""
        return max(1, READ_BUDGET_BYTES // max(1, 8 * len(self)))

    @contextlib.contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A bounded read-only connection whose memory limit is at most ``MEMORY_LIMIT``: these reads only scan,
        and DuckDB keeps the blocks it has read cached up to its limit (1 GB by default: ~0.45 GB more RSS at 5M
        records when the scoring scanned 16 columns, against ~0.2 GB with 128 MB and 50,000-row chunks)."""
        with bounded_read_only(self.path, _SPILL) as con:
            limit = con.execute("select current_setting('memory_limit')").fetchall()[0][0]
            con.execute("set memory_limit = ?", [MEMORY_LIMIT])
            if _bytes(con.execute("select current_setting('memory_limit')").fetchall()[0][0]) > _bytes(limit):
                con.execute("set memory_limit = ?", [limit])  # a smaller SEGFIT_DUCKDB_MEMORY_LIMIT is kept
            yield con

    def _select(self, columns: Sequence[str]) -> str:
        return ", ".join([_quoted(ORDER), *(_quoted(c) for c in columns)])

    def _read(self, columns: Sequence[str]) -> pd.DataFrame:
        """``columns`` for every record, in ``source_row_number`` order (the whole-mart read's frame)."""
        with self._connection() as con:
            box = [con.sql(f"select {self._select(columns)} from {RELATION}").to_arrow_table()]  # noqa: S608
        self._check_order(box[0].column(0))
        box[0] = box[0].remove_column(0)
        # arrow_to_frame frees each Arrow column once converted: no other reference to the table may be held
        return arrow_to_frame(box.pop(), None if self._identity else self._order)

    def _check_order(self, keys: pa.ChunkedArray, start: int = 0) -> None:
        if not keys.combine_chunks().equals(self._keys.slice(start, len(keys))):
            raise RuntimeError(f"{RELATION} was read in another row order than its first read")

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        """``base`` with ``columns`` added (those the table has), for every record: what the whole-mart frame
        gives for these columns. The base columns are shared, not copied."""
        extra = [c for c in dict.fromkeys(columns) if c in self.columns and c not in self.base.columns]
        out = self.base.copy(deep=False)
        if extra:
            read = self._read(extra)
            for name in extra:
                out[name] = read[name]
        return out

    def rows(self, positions: np.ndarray) -> pd.DataFrame:
        """Every column of the records at ``positions`` (of the ``source_row_number`` order), in that order and
        with the dtypes of the whole-mart frame (a column with a null among every record stays nullable; a text
        column null on every record is ``object``): ``fit.take(positions).reset_index(drop=True)``."""
        keys = pa.table({"_key": self._keys.take(self._order.take(pa.array(np.asarray(positions, dtype=np.int64))))})
        with self._connection() as con:
            nulls = con.execute("select " + ", ".join(  # noqa: S608 - quoted, checked names
                f"count(*) - count({_quoted(c)})" for c in self.columns) + f" from {RELATION}").fetchall()[0]
            con.register("segfit_sample_keys", keys)
            table = con.sql(f"select src.* from {RELATION} as src semi join segfit_sample_keys as k "  # noqa: S608
                            f"on src.{ORDER} = k._key order by src.{ORDER}").to_arrow_table()
            con.unregister("segfit_sample_keys")
        total = len(self)
        hints = {c: (int(n) > 0, int(n) == total) for c, n in zip(self.columns, nulls or (), strict=True)}
        return arrow_to_frame(table, null_hints=hints)

    def chunks(self, columns: Sequence[str], size: int) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        """``columns`` of every record in chunks of at most ``size`` rows, in the order DuckDB streams them:
        (the rows' positions in ``source_row_number`` order, the chunk's frame). Only a chunk or two is held:
        without ``preserve_insertion_order`` DuckDB does not buffer the scan to keep the table's order (which held
        ~0.6 GB more at 5M records); each chunk's keys give its positions."""
        rank = None
        if self._sorted_keys is None:  # keys not unique: the chunks in insertion order, positions by the rank
            rank = np.empty(len(self), dtype=np.int64)
            rank[self._order.to_numpy()] = np.arange(len(self))
        with self._connection() as con:
            if rank is None:
                con.execute("set preserve_insertion_order = false")
            reader = con.sql(f"select {self._select(columns)} from {RELATION}").to_arrow_reader(  # noqa: S608
                min(size, CHUNK_ROWS))
            start = 0
            for batch in reader:
                table = pa.Table.from_batches([batch])
                if rank is None:
                    positions = np.searchsorted(self._sorted_keys, table.column(0).to_numpy())
                else:
                    self._check_order(table.column(0), start)
                    positions = rank[start:start + len(table)]
                start += len(table)
                yield positions, arrow_to_frame(table.remove_column(0))
            if start != len(self):
                raise RuntimeError(f"{RELATION} gave {start} rows, not {len(self)}")

    def profile(self):  # noqa: ANN201 - a profile.DataProfile
        """The data profile over every record (``profile.data_profile``), computed in SQL."""
        from python_analysis.profile import data_profile_sql

        with self._connection() as con:
            return data_profile_sql(con, RELATION, self.columns, len(self))

