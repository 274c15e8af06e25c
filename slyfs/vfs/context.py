"""What every view needs at hand: the cached platform, the render cache, the spill store and the
per-TTL listing cache, each sized from the mount's memory budget (`slyfs mount --memory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slyfs.platform.budget import share
from slyfs.platform.cached import CachedPlatform, SingleFlightCache
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.frames import Frames

if TYPE_CHECKING:
    from slyfs.vfs.spill import SpillStore

NODE_BYTES = 2048  # what one node of a cached listing holds, about (the node, its image record, its index slot)


def listing_weight(value: Any) -> float:
    """Bytes a cached listing holds, about: NODE_BYTES per node. IndexedDir caches (nodes, index)."""
    if isinstance(value, tuple) and value and isinstance(value[0], list):
        return max(len(value[0]), 1) * NODE_BYTES
    if isinstance(value, list | dict):
        return max(len(value), 1) * NODE_BYTES
    return NODE_BYTES


@dataclass
class ViewContext:
    """What every view needs: cached platform data, the render cache and mount options.

    The render cache and the listing cache are sized from the platform's memory budget
    (`CachedPlatform.memory_bytes`) unless a render cache is given."""

    platform: CachedPlatform
    renders: RenderCache = None  # type: ignore[assignment]  # None: sized from the budget
    spill: SpillStore | None = None  # renderings too large for memory (None: the process's temporary one)
    shard_size: int = 1 << 30
    """webdataset/: a shard ends with the sample that brings it to this size (`--shard-size`)."""
    video_frames: str = "annotated"
    """Frames of a video project the image formats show: "annotated", "all", or "N" (every Nth)."""
    listings: SingleFlightCache = field(init=False)
    sizes: SingleFlightCache = field(init=False)
    """Sizes of generated files worked out together (yolo's tasks), apart from `listings`: a heavy
    listing there clears the others, and these must outlive it. Values have an `nbytes`."""
    frames: Frames = field(init=False)

    def __post_init__(self) -> None:
        budget = self.platform.memory_bytes
        if self.renders is None:
            self.renders = RenderCache(share(budget, "renders"))
        # A listing larger than the whole share is still kept, alone, for its TTL (SingleFlightCache).
        self.listings = SingleFlightCache(self.platform.ttl, maxsize=share(budget, "listings"),
                                          getsizeof=listing_weight)
        self.sizes = SingleFlightCache(self.platform.ttl, maxsize=share(budget, "sizes"),
                                       getsizeof=lambda v: float(v.nbytes))
        self.frames = Frames(share(budget, "frames"))

    def invalidate(self) -> None:
        self.platform.invalidate()
        self.listings.clear()
