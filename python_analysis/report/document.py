"""The report as data: sections made of blocks. The templates (``templates/``) turn it into HTML and Markdown.

Blocks hold final text (numbers already formatted); nothing here is escaped, the templates escape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from . import formats


@dataclass(frozen=True)
class Para:
    text: str
    kind: str = "para"
    emphasis: bool = False


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]
    kind: str = "bullets"


@dataclass(frozen=True)
class Subheading:
    text: str
    anchor: str
    kind: str = "subheading"


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    numeric: tuple[bool, ...] = ()
    kind: str = "table"


@dataclass(frozen=True)
class Image:
    name: str
    caption: str
    kind: str = "image"


@dataclass(frozen=True)
class Code:
    text: str
    title: str
    kind: str = "code"


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    kind: str = "link"

    @property
    def safe(self) -> bool:
        scheme = self.href.strip().split(":", 1)[0].lower() if ":" in self.href else ""
        return scheme not in {"javascript", "data", "vbscript"}


Block = Para | Bullets | Subheading | Table | Image | Code | Link


@dataclass(frozen=True)
class Section:
    """One numbered section (``number`` '' for the unnumbered header parts, 'A', 'B' for appendices)."""

    number: str
    title: str
    anchor: str
    blocks: tuple[Block, ...]

    @property
    def heading(self) -> str:
        if self.number.startswith("Appendix"):
            return f"{self.number}: {self.title}"
        return f"{self.number}. {self.title}" if self.number else self.title

    @property
    def subsections(self) -> tuple[Subheading, ...]:
        return tuple(b for b in self.blocks if isinstance(b, Subheading))


def anchor(text: str) -> str:
    """A stable id from a title: lower case, words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def table(
    frame: pd.DataFrame,
    caption: str = "",
    *,
    formats_by_column: Mapping[str, Callable[[Any], str]] | None = None,
    labels: Mapping[str, str] | None = None,
) -> Table:
    """A table from a frame: each column printed in its kind's format, headed by its human label."""
    own = dict(formats_by_column or {})
    labels = dict(labels or {})
    columns = list(frame.columns)
    rows = []
    for record in frame.itertuples(index=False, name=None):
        rows.append(tuple(own[c](v) if c in own else formats.cell(c, v) for c, v in zip(columns, record, strict=True)))
    numeric = tuple(pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
                    for c in columns)
    return Table(
        columns=tuple(labels.get(c, formats.label(c)) for c in columns),
        rows=tuple(rows),
        caption=caption,
        numeric=numeric,
    )


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> Table:
    return Table(columns=tuple(columns), rows=tuple(tuple(r) for r in rows), caption=caption,
                 numeric=tuple(False for _ in columns))
