"""Platforms: the interface, the embedded local store and the Supervisely HTTP API client."""

from slyfs.platform.base import NameConflict, NotFound, Platform, PlatformError, Unavailable, content_hash

__all__ = ["NameConflict", "NotFound", "Platform", "PlatformError", "Unavailable", "content_hash"]
