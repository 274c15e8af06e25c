"""What every view needs at hand: the cached platform, the render cache, the spill store and the
per-TTL listing cache, each sized from the mount's memory budget (`slyfs mount --memory`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from slyfs.platform.budget import share
from slyfs.platform.cached import CachedPlatform, ImageList, SingleFlightCache
from slyfs.vfs.cache import RenderCache
from slyfs.vfs.frames import Frames

if TYPE_CHECKING:
    from slyfs.vfs.spill import SpillStore

T = TypeVar("T")

DERIVED_BYTES_PER_IMAGE = 400  # a value made per image (a VOC id record) and its image's packed row, measured
NODE_BYTES = 2048  # what one node of a cached listing holds, about (the node, its image record, its index slot)


def listing_weight(value: Any) -> float:
    """Bytes a cached listing holds, about: NODE_BYTES per node. IndexedDir caches (nodes, index)."""
    if isinstance(value, tuple) and value and isinstance(value[0], list):
        return max(len(value[0]), 1) * NODE_BYTES
    if isinstance(value, list | dict):
        return max(len(value), 1) * NODE_BYTES
    return NODE_BYTES


def derived_weight(entry: tuple[tuple[Any, ...], Any]) -> float:
    """Bytes a `ViewContext.derived` value holds, about: DERIVED_BYTES_PER_IMAGE per image of its basis."""
    basis, _ = entry
    return max(sum(len(b) for b in basis if isinstance(b, ImageList)), 1) * DERIVED_BYTES_PER_IMAGE


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
    listing there clears the others, and these must outlive it. Values have an `nbytes`. Kept past the
    TTL, within the "sizes" share: each size is stored with its annotation's version and checked
    against it, so a listing made after the TTL finds the sizes of what did not change."""
    frames: Frames = field(init=False)
    _derived: SingleFlightCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        budget = self.platform.memory_bytes
        if self.renders is None:
            self.renders = RenderCache(share(budget, "renders"))
        # A listing larger than the whole share is still kept, alone, for its TTL (SingleFlightCache).
        self.listings = SingleFlightCache(self.platform.ttl, maxsize=share(budget, "listings"),
                                          getsizeof=listing_weight)
        self.sizes = SingleFlightCache(math.inf, maxsize=share(budget, "sizes"),
                                       getsizeof=lambda v: float(v.nbytes))
        self.frames = Frames(share(budget, "frames"))
        # within the listings' share: the files listed from a derived value hold it anyway while they live
        self._derived = SingleFlightCache(math.inf, maxsize=share(budget, "listings"), getsizeof=derived_weight)

    def derived(self, key: Hashable, basis: tuple[Any, ...], make: Callable[[], T]) -> T:
        """What `make` builds from `basis` (a project's inputs, its image lists), kept while the basis is
        the same rather than for a TTL: the platform's caches refetch the basis after each TTL, and hand
        back the very objects when nothing changed (`ImageList.refetched`). Rebuilt each TTL instead, a
        view's per-image facts (VOC ids of 100,000 images) were held twice once a listing made from the
        first copy outlived it (`ls -lR voc/` over `slyfs serve`: 330 MB)."""

        def same(entry: tuple[tuple[Any, ...], Any]) -> bool:
            kept = entry[0]
            return len(kept) == len(basis) and all(a is b or a == b for a, b in zip(kept, basis, strict=True))

        entry: tuple[tuple[Any, ...], T] = self._derived.get(key, lambda: (basis, make()), valid=same)
        return entry[1]

    def invalidate(self) -> None:
        self.platform.invalidate()
        self.listings.clear()
