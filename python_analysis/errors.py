"""The errors segfit reports to the user as one line (the CLI maps them to exit codes)."""

from __future__ import annotations


class SegfitError(Exception):
    """A problem the user can fix; the CLI prints it and exits non-zero."""


class InputFileError(SegfitError):
    """An input file that cannot be used: names the file, and the column or line when known."""
