"""Handing freed memory back to the operating system between the report's steps.

On large data the report's process frees hundreds of MB between steps (the mart reads' Arrow buffers, the
model inputs), but the allocators keep the freed pages for reuse: pyarrow's memory pool (mimalloc) and
glibc's malloc both count towards the process's RSS until they return them. At 5M records that retained
memory was about 260 MB at the report's peak, which is what the memory target (#11) measures. This asks
both allocators to return what they hold unused. No maintained library wraps ``malloc_trim`` (a glibc call);
on other C libraries it is skipped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_unused_memory() -> None:
    """Return the freed memory that pyarrow's pool and glibc's malloc keep to the operating system."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
