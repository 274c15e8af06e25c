"""What every view needs at hand: the cached platform, the render cache, the spill store and the
per-TTL listing cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from slyfs.platform.cached import CachedPlatform, SingleFlightCache
from slyfs.vfs.cache import RenderCache

if TYPE_CHECKING:
    from slyfs.vfs.spill import SpillStore


@dataclass
class ViewContext:
    """What every view needs: cached platform data, the render cache and mount options."""

    platform: CachedPlatform
    renders: RenderCache = field(default_factory=RenderCache)
    spill: SpillStore | None = None  # renderings too large for memory (None: the process's temporary one)
    listings: SingleFlightCache = field(init=False)

    def __post_init__(self) -> None:
        self.listings = SingleFlightCache(self.platform.ttl, maxsize=1024)

    def invalidate(self) -> None:
        self.platform.invalidate()
        self.listings.clear()
