"""Whether a process still lives: a store row marked running, or a partial artifact folder,
held by a process that is gone is free to take or to remove."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while a process of that id exists on this host (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
