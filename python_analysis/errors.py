"""The errors segfit reports to the user as one line, and the one table of exit codes."""

from __future__ import annotations


class SegfitError(Exception):
    """A problem the user can fix; the CLI prints it and exits non-zero."""


class InputFileError(SegfitError):
    """An input file that cannot be used: names the file, and the column or line when known."""


# Exit codes of the `segfit` command.
EXIT_OK = 0
EXIT_USER_ERROR = 2  # a problem the user can fix: printed as one line
EXIT_CHECKS_FAILED = 3  # great-expectations found errors; nothing was published
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM)
