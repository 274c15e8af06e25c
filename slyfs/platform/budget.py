"""The mount's memory budget (`slyfs mount --memory`) and how its caches share it: one table.

The budget is the whole mount's: what a user sees in `ps`. The interpreter, its libraries and the
mount's fixed structures take about BASELINE of it whatever the dataset; the rest is shared out
between the caches that grow with the data (image lists, parsed annotations, renderings, listings,
the inodes the kernel holds, kept readdir listings). The shares add up to one, so every cache at
its bound together stays within the budget.
"""

from __future__ import annotations

from typing import Literal

DEFAULT_MEMORY = 256 << 20
BASELINE = 96 << 20  # measured: a mount with nothing listed yet (Python, numpy, cv2, pyfuse3, trio, SQLite)

Cache = Literal["bundles", "parsed", "renders", "listings", "sizes", "inodes", "listed", "frames"]
SHARES: dict[Cache, float] = {
    "bundles": 0.15,  # datasets' image lists, as packed rows (platform.cached)
    # parsed annotations looked up one at a time (platform.cached): mostly read again at once (a stat,
    # then the read); a listing reads its annotations in bulk, past it. At 0.15, `ls -lR masks/` of
    # 100,000 images filled it with what was never read again: 297 MiB peak, 284 at 0.05.
    "parsed": 0.05,
    "renders": 0.24,  # rendered files kept for re-reads, shards' read-ahead pieces (vfs.context)
    "listings": 0.18,  # folders' nodes kept for the TTL (vfs.context)
    "sizes": 0.02,  # sizes of generated files learned from one parse for several (formats: yolo's tasks)
    "inodes": 0.20,  # file inodes the kernel holds (fs.operations)
    "listed": 0.10,  # readdir listings kept for the next `ls` of the same folder (fs.operations)
    "frames": 0.06,  # open video decoders and recent frames (vfs.frames; one decoder stays open regardless)
}
assert abs(sum(SHARES.values()) - 1.0) < 1e-9


def share(memory: int, cache: Cache) -> int:
    """Bytes `cache` may hold in a mount whose budget is `memory`. A budget below the baseline (tests
    that want tight caches) still gives the caches a quarter of it."""
    return int(max(memory - BASELINE, memory // 4) * SHARES[cache])
