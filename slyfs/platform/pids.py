"""Whether a process still runs: asked of mounts and of the folders their processes leave behind.
Kept free of heavy imports: `slyfs unmount` uses it and must start in a blink."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """Whether `pid` still runs. A zombie does not: it has let go of everything but its pid (a
    background mount's parent is init, which reaps it in its own time)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
