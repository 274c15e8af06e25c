"""Format-agnostic file mechanics: the node protocol, files of known size (platform bytes, rendered,
sized, spilled), caches, the naming rules, and the writable area on local disk."""
