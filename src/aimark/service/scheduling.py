"""Admission to scarce work: the one model, and the detection workers.

Requests wait for a slot on the event loop (an anyio Event per waiter), never in a worker thread: a
thread blocked on a lock is a slot of anyio's shared thread pool taken from every other route, and
enough of them (40 by default) stop the whole server, /v1/verify and shutdown included. The queue is
bounded and the wait has a deadline; past either the client gets a 503 with Retry-After.

Generation itself runs on a thread of its own (`GENERATION_THREADS`), separate from anyio's pool, so a
stream suspended between chunks holds no shared thread either.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio

from aimark.service.errors import ApiError

T = TypeVar("T")
GENERATION_THREADS = 1  # one model, used by one request at a time


class Gate:
    """At most `capacity` holders; at most `max_waiting` more wait, each for at most `wait_timeout_s`."""

    def __init__(self, capacity: int, max_waiting: int, wait_timeout_s: float, *, what: str):
        self.capacity, self.max_waiting, self.wait_timeout_s, self.what = capacity, max_waiting, wait_timeout_s, what
        self._holders = 0
        self._waiters: deque[anyio.Event] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def _busy(self, why: str) -> ApiError:
        return ApiError(503, "server_busy", f"{self.what} is busy ({why}); try again shortly",
                        headers={"Retry-After": str(max(1, round(self.wait_timeout_s / 4)))})

    async def acquire(self) -> None:
        if self._holders < self.capacity and not self._waiters:
            self._holders += 1
            return
        if len(self._waiters) >= self.max_waiting:
            raise self._busy(f"{self.max_waiting} requests already waiting")
        handed = anyio.Event()
        self._waiters.append(handed)
        try:
            with anyio.move_on_after(self.wait_timeout_s):
                await handed.wait()
        except BaseException:  # cancelled (the client left): pass on a slot handed over meanwhile
            self._leave(handed)
            raise
        if not handed.is_set():
            self._leave(handed)
            raise self._busy(f"no slot within {self.wait_timeout_s:g} s")

    def _leave(self, handed: anyio.Event) -> None:
        if handed.is_set():
            self.release()
        else:
            self._waiters.remove(handed)

    def release(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()  # the slot passes straight to the longest waiter
        else:
            self._holders -= 1

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()


def generation_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=GENERATION_THREADS, thread_name_prefix="aimark-generation")


async def run_on(executor: ThreadPoolExecutor, function: Callable[..., T], *args) -> T:
    """`function(*args)` on `executor`, awaited without taking a thread of anyio's shared pool."""
    return await asyncio.get_running_loop().run_in_executor(executor, function, *args)
