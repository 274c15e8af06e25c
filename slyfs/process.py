"""Process-wide tuning of slyfs's long-running processes: the mount and `slyfs serve`.

Both make and drop containers by the hundred thousand (nodes, pages of annotations, parsed JSON)
and run many threads; CPython's and glibc's defaults are tuned for neither."""

from __future__ import annotations

import ctypes
import gc

M_ARENA_MAX = -8  # glibc's mallopt parameter
GC_THRESHOLD = 10_000  # young objects allocated between collections (CPython: 700)


def tune_malloc() -> None:
    """One malloc arena for all threads, before the worker threads start: glibc's default (an arena
    per thread) kept freed listing memory in the mount (`ls -lR voc/` of 100,000 images: 358 MB peak,
    348 MB with one arena). The mmap threshold is left to grow as glibc does: fixed at 128 KiB it
    saved another 11 MB there, but then every decoded video frame (8 MB at 1080p) was a fresh mmap,
    page-faulted in and unmapped again: exporting 201 frames took 2.4 s instead of 1.7 s.
    Not glibc (or no ctypes): nothing to do."""
    try:
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass


def tune_gc() -> None:
    """Collect young objects less often, and never scan what exists at start again. Listing a big
    folder makes 100,000s of nodes and parses as many annotations (hundreds of containers each); at
    CPython's threshold (700) the collector ran every few annotations. Measured on 100,000 images
    (scripts/bench_views.py, interleaved): in the mount, `ls -lR sly/` 5.75 -> 5.0 s and `ls -lR yolo/`
    42.7 -> 38.9 s. What both processes hold is mostly acyclic (nodes, rows, parsed JSON), which
    refcounting frees."""
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
