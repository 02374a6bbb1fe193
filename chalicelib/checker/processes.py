"""Check a long list on every core: forked worker processes, each running check_many on a share.

One process does a TLS handshake's client side (about half a millisecond of CPU) and judges the
chain on one core; a list of a thousand targets is CPU-bound there, whatever the concurrency. So
`check_on_cores` forks one worker per usable core (never more than one per MIN_SHARE targets),
hands each a share of the list, and gathers their results in the order of the requests. The
workers are forked after everything is imported and before any thread or event loop exists, so
they start in a millisecond and share the trust store. Requests for the same target and address
stay in one share, where check_many probes them once.

A worker sends one byte per finished target (for the progress count) and then its pickled
results over a pipe. A worker that dies or answers garbage loses nothing: its share is checked
again in this process. Where forking is not safe (not Linux, or threads already running), the
whole list is checked here, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import selectors
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from chalicelib.checker.check import CheckRequest, check_many
from chalicelib.logs import get_logger

if TYPE_CHECKING:
    from chalicelib.checker.evaluate import CheckResult

logger = get_logger(__name__)

MIN_SHARE = 100  # below this a worker's start and hand-over cost more than the core saves
MIN_IN_FLIGHT = 250  # probes in flight a worker needs before its handshakes fill a core
_TICK = b"+"  # one finished target
_RESULTS = b"="  # what follows is the pickled list of results


def usable_cores() -> int:
    """Return how many cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def can_fork() -> bool:
    """Tell whether forking workers is safe here: Linux, and no other thread running yet."""
    return sys.platform.startswith("linux") and threading.active_count() == 1


def plan_processes(distinct: int, wanted: int | None = None, concurrency: int = 0) -> int:
    """Return how many processes should check `distinct` probes, `concurrency` at once in all.

    `wanted` None: one per usable core, at most one per MIN_SHARE probes, and only as many as
    keep MIN_IN_FLIGHT probes each in flight (fewer at once wait on the network, not the CPU,
    and a second process would only halve each one's share). A number asked for is honoured,
    up to one process per probe.
    """
    if wanted is not None:
        return max(1, min(wanted, distinct))
    return max(1, min(usable_cores(), distinct // MIN_SHARE, concurrency // MIN_IN_FLIGHT))


@dataclass
class _Worker:
    """A forked worker as the parent sees it: its share, its pipe and what came through it."""

    pid: int
    fd: int
    share: list[int]
    received: bytearray = field(default_factory=bytearray)
    ticks: int = 0
    sealed: bool = False  # the results marker arrived: everything after it is the payload


def shares_of(requests: Sequence[CheckRequest], count: int) -> list[list[int]]:
    """Split the request indexes into `count` shares, keeping each (target, ip) in one share."""
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        groups.setdefault((request.target, request.ip), []).append(index)
    shares: list[list[int]] = [[] for _ in range(count)]
    for number, indexes in enumerate(groups.values()):
        shares[number % count].extend(indexes)
    return [share for share in shares if share]


def check_on_cores(
    requests: Sequence[CheckRequest],
    *,
    concurrency: int,
    processes: int | None = None,
    progress: Callable[[], None] | None = None,
    **options,
) -> list[CheckResult]:
    """Check every request (as check_many does, with its `options`); results in request order.

    `processes` None picks one per usable core (fewer for a short list); 1 checks here. The
    `concurrency` is the total: each worker keeps its part of it in flight.
    """
    distinct = len({(request.target, request.ip) for request in requests})
    count = plan_processes(distinct, processes, concurrency)
    if count < 2 or not can_fork():
        return _check_here(requests, concurrency, progress, options)
    shares = shares_of(requests, count)
    each = max(1, math.ceil(concurrency / len(shares)))
    sys.stdout.flush()
    sys.stderr.flush()
    workers: list[_Worker] = []
    try:
        for share in shares:
            workers.append(_fork(share, [requests[i] for i in share], each, options))
        _gather([worker for worker in workers if worker.pid], progress)
    except BaseException:
        for worker in workers:
            _stop(worker)
        raise
    for worker in workers:
        _reap(worker)
    results: list[CheckResult | None] = [None] * len(requests)
    for worker in workers:
        found = _payload(worker)
        if found is None:
            logger.warning(
                "a check worker failed; its share is checked again here", targets=len(worker.share)
            )
            again = [requests[i] for i in worker.share]
            found = _check_here(again, concurrency, _silent(progress, worker.ticks), options)
        for index, result in zip(worker.share, found, strict=True):
            results[index] = result
    return results  # type: ignore[return-value]


def _check_here(requests, concurrency, progress, options) -> list[CheckResult]:
    return asyncio.run(check_many(requests, concurrency=concurrency, progress=progress, **options))


def _silent(progress: Callable[[], None] | None, already: int) -> Callable[[], None] | None:
    """Count again only the targets a failed worker had not reported finished."""
    if progress is None:
        return None
    skipped = 0

    def step() -> None:
        nonlocal skipped
        if skipped < already:
            skipped += 1
        else:
            progress()

    return step


def _fork(share: list[int], requests: list[CheckRequest], concurrency: int, options) -> _Worker:
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to be had: this share is checked here
        os.close(read_end)
        os.close(write_end)
        return _Worker(pid=0, fd=-1, share=share)
    if pid == 0:  # the worker: check, send, and leave without running the parent's cleanup
        os.close(read_end)
        status = 1
        try:
            _work(write_end, requests, concurrency, options)
            status = 0
        except KeyboardInterrupt:
            status = 130
        except BaseException:  # the parent checks the share again
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    return _Worker(pid=pid, fd=read_end, share=share)


def _work(fd: int, requests: list[CheckRequest], concurrency: int, options) -> None:
    def tick() -> None:
        os.write(fd, _TICK)

    found = _check_here(requests, concurrency, tick, options)
    data = _RESULTS + pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def _gather(workers: list[_Worker], progress: Callable[[], None] | None) -> None:
    """Read every worker's pipe to its end, counting progress as the ticks come in."""
    with selectors.DefaultSelector() as selector:
        for worker in workers:
            selector.register(worker.fd, selectors.EVENT_READ, worker)
        open_pipes = len(workers)
        while open_pipes:
            for key, _events in selector.select():
                worker: _Worker = key.data
                chunk = os.read(worker.fd, 1 << 16)
                if not chunk:
                    selector.unregister(worker.fd)
                    open_pipes -= 1
                    continue
                _take(worker, chunk, progress)


def _take(worker: _Worker, chunk: bytes, progress: Callable[[], None] | None) -> None:
    if not worker.sealed:
        ticks, marker, rest = chunk.partition(_RESULTS)
        worker.ticks += len(ticks)
        if progress is not None:
            for _ in range(len(ticks)):
                progress()
        if not marker:
            return
        worker.sealed = True
        chunk = rest
    worker.received += chunk


def _reap(worker: _Worker) -> None:
    """Wait for a worker that has closed its pipe (it is leaving)."""
    if worker.pid:
        os.close(worker.fd)
        os.waitpid(worker.pid, 0)


def _stop(worker: _Worker) -> None:
    """End a worker at once (the parent is leaving early, e.g. on an interrupt)."""
    if not worker.pid:
        return
    with contextlib.suppress(OSError):
        os.close(worker.fd)
    with contextlib.suppress(OSError):
        os.kill(worker.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(worker.pid, 0)


def _payload(worker: _Worker) -> list[CheckResult] | None:
    """Return the worker's results, or None when it did not deliver a whole, matching list."""
    if not worker.sealed:
        return None
    try:
        # Written by our own forked child through a pipe only it and we hold.
        found = pickle.loads(bytes(worker.received))  # noqa: S301
    except Exception:  # a truncated or garbled payload: the share is checked here
        return None
    if not isinstance(found, list) or len(found) != len(worker.share):
        return None
    return found
