"""Reading great-expectations results: raised exceptions and the offending rows, named by their keys."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def _raised(exception_info: Any) -> str | None:
    """The message of a raised exception hidden in a result's exception_info (flat or keyed by metric)."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "exception")
    for value in exception_info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "exception")
    return None


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "<null>"
    if isinstance(value, (np.generic,)):
        value = value.item()
    return str(value)


def _target_columns(kwargs: Mapping[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def _in_key_order(indices: list[Any], frame: pd.DataFrame, key_columns: list[str]) -> list[Any]:
    """The offending rows in key order (missing keys last), as the SQL paths and GX's Spark datasource list
    them, so the examples shown do not depend on the order a table was stored in."""
    rows = [i for i in indices if not isinstance(i, dict) and i in frame.index]
    if not key_columns or len(rows) < 2:
        return indices
    ordered = frame.loc[rows, key_columns].sort_values(key_columns, na_position="last", kind="stable").index
    return [*ordered, *(i for i in indices if isinstance(i, dict) or i not in frame.index)]


def _offending(result: Mapping[str, Any], kwargs: Mapping[str, Any], frame: pd.DataFrame, keys: tuple[str, ...],
               limit: int) -> tuple[list[str], int | None]:
    indices = result.get("unexpected_index_list")
    if indices is not None:
        columns = [c for c in _target_columns(kwargs) if c in frame.columns]
        key_columns = [c for c in keys if c in frame.columns]
        indices = _in_key_order(list(indices), frame, key_columns)
        out: list[str] = []
        for index in indices:
            if isinstance(index, dict) or index not in frame.index:
                label = _text(index)
            else:
                row = frame.loc[index]
                label = "/".join(f"{k}={_text(row[k])}" for k in key_columns) or f"row {index}"
                values = [f"{c}={_text(row[c])}" for c in columns if c not in key_columns]
                if values:
                    label += ": " + ", ".join(values)
            if label not in out:
                out.append(label)
            if len(out) >= limit:
                break
        count = result.get("unexpected_count")
        return out, int(count) if count is not None else len(indices)
    details = result.get("details") or {}
    missing = (details.get("mismatched") or {}).get("missing") if isinstance(details, dict) else None
    if missing:
        return [f"missing column {c}" for c in missing][:limit], len(missing)
    if "observed_value" in result:
        bounds = {k: kwargs[k] for k in ("value", "min_value", "max_value") if k in kwargs}
        expected = ", ".join(f"{k}={_text(v)}" for k, v in bounds.items())
        observed = f"observed={_text(result['observed_value'])}"
        return [f"{observed} (expected {expected})" if expected else observed][:limit], None
    return [], None
