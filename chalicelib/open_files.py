"""Fit the number of probes in flight to this process's open-files limit (ulimit -n)."""

from __future__ import annotations

import os

# Each probe holds one socket, and a name lookup in flight may briefly hold another (the
# resolver's socket or /etc/hosts); the rest is for the interpreter, the loop and the output.
FILES_PER_PROBE = 2
RESERVE = 24
# macOS refuses a soft limit above OPEN_MAX even when the hard limit is "unlimited".
MACOS_OPEN_MAX = 10240


def files_in_use() -> int:
    """Return how many file descriptors this process has open (0 when it cannot tell)."""
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(directory))
        except OSError:
            continue
    return 0


def fit_concurrency(wanted: int) -> int:
    """Return how many probes may run at once, raising the soft limit toward the hard one first.

    Without this, a process with `ulimit -n 256` (macOS's default) and 250 probes in flight
    fails every connection past the limit with "Too many open files", which reads as if the
    servers were at fault.
    """
    try:
        import resource  # not on Windows
    except ImportError:
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    in_use = files_in_use()
    needed = in_use + RESERVE + wanted * FILES_PER_PROBE
    if soft != resource.RLIM_INFINITY and soft < needed:
        for ceiling in (hard, MACOS_OPEN_MAX):
            target = needed if ceiling == resource.RLIM_INFINITY else min(needed, ceiling)
            if target <= soft:
                continue
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
                break
            except (ValueError, OSError):
                continue
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, (soft - in_use - RESERVE) // FILES_PER_PROBE))
