"""Detection and verification for the HTTP routes: in worker processes under a deadline, or in-process.

A thread cannot be stopped, and CPU-bound Python in one holds the GIL from every other request; a
process can be killed. With `detect_workers` > 0 each check runs in a pool of spawned processes (never
forked: the parent has torch's threads running), each of which builds the detector once from a
picklable `CheckSetup`; a check past `detect_deadline_s` is killed, its worker replaced, and the client
answered 503. With 0 workers (tests, embedded use) checks run in the server's threads, without a deadline.
Either way at most a bounded number run or wait at once (scheduling.Gate), waiting on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from dataclasses import dataclass
from typing import Any

import anyio

from aimark.service.errors import ApiError
from aimark.service.scheduling import Gate

IN_PROCESS_CHECKS = 4  # concurrent in-process checks: leaves most of anyio's 40 threads to everything else


class CheckInputError(ValueError):
    """The detector refused the input; the message is aimark's own and safe to show."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(code, message, param)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class CheckSetup:
    """What a worker process needs to build the detector and open the registry (all picklable)."""

    keys: tuple
    tokenizer: Any
    alpha: float
    db_url: str
    retention_days: int
    min_evidence: int
    trust_anchors: bytes | None
    watermark_absent: str | None = None


class Checks:
    """The work itself, the same in a worker and in-process; answers are plain dicts (they cross a pipe).

    ``detector`` None: the outputs this service issues carry no watermark it can check (a gateway in front
    of an upstream without a known key); ``watermark_absent`` says why, in every verification report.
    """

    def __init__(self, detector, registry, trust_anchors: bytes | None, watermark_absent: str | None = None):
        self.detector, self.registry, self.trust_anchors = detector, registry, trust_anchors
        self.watermark_absent = watermark_absent

    @classmethod
    def from_setup(cls, setup: CheckSetup) -> Checks:
        from aimark.detect import Detector
        from aimark.keys import Keyring
        from aimark.registry import Registry

        detector = Detector(Keyring(list(setup.keys)), setup.tokenizer, alpha=setup.alpha) if setup.keys else None
        return cls(detector, Registry(setup.db_url, retention_days=setup.retention_days, min_evidence=setup.min_evidence),
                   setup.trust_anchors, setup.watermark_absent)

    def detect(self, text: str, prompt: str | None, with_tokens: bool, language: str | None,
               filename: str | None) -> dict:
        """`language`: the caller's code gate; None: from the filename's extension, else guessed from the text."""
        from aimark.detect import DetectionInputError, TokenizerMismatchError
        from aimark.schemes.code import UnsupportedLanguageError, detection_language

        if self.detector is None:
            raise CheckInputError("no_watermark_key", f"no watermark to detect: {self.watermark_absent}; "
                                                      "/v1/verify checks the notice, C2PA and the registry")
        try:
            gate = detection_language(text, language=language, filename=filename)
        except UnsupportedLanguageError as err:
            raise CheckInputError("invalid_language", str(err), "language") from None
        try:
            result = self.detector.detect(text, prompt=prompt, with_tokens=with_tokens, language=gate)
        except (DetectionInputError, TokenizerMismatchError) as err:
            raise CheckInputError("detection_input", " ".join(str(err).split())) from None
        return result.to_dict(include_tokens=with_tokens)

    def verify(self, content: bytes, filename: str | None, profile: str, with_tokens: bool) -> tuple[dict, dict | None, int]:
        """(report, heat map or None, characters scored for the watermark)."""
        from aimark.verify import verify
        from aimark.verify.watermark import detect_file_text

        seen: dict[str, Any] = {"chars": 0, "heatmap": None}

        def check(text: str, filename: str | None = None) -> dict:
            result = detect_file_text(self.detector, text, filename, with_tokens=with_tokens)
            seen["chars"] += len(text)
            if with_tokens:
                seen["heatmap"] = {"text": text, "tokens": result.to_dict(include_tokens=True)["tokens"]}
            return result.to_dict()

        report = verify(content, filename, profile, trust_anchors=self.trust_anchors,
                        watermark_check=check if self.detector is not None else None,
                        registry_lookup=self.registry.lookup_dict, watermark_absent=self.watermark_absent)
        return report.to_dict(), seen["heatmap"], seen["chars"]


_worker_checks: Checks | None = None


_WARM_UP_TEXT = "A short answer, read once when a worker starts so that no request pays for the first call.\n"


def _init_worker(setup: CheckSetup, workers_started) -> None:
    global _worker_checks
    _worker_checks = Checks.from_setup(setup)
    # The first check in a fresh process imports the verifier, parsers and statistics and warms the tokenizer
    # (about a second): pay it here, before the worker takes requests, not in the first request it serves.
    with contextlib.suppress(Exception):
        _worker_checks.detect(_WARM_UP_TEXT, None, False, None, "warm-up.txt")
        _worker_checks.verify(_WARM_UP_TEXT.encode(), "warm-up.txt", "all", False)
    with workers_started.get_lock():
        workers_started.value += 1


def _started() -> bool:
    return True


def _in_worker(method: str, *args):
    return getattr(_worker_checks, method)(*args)


class CheckRunner:
    def __init__(self, runtime):
        config = runtime.config
        self.deadline_s = config.detect_deadline_s
        self.workers = config.detect_workers
        self.gate = Gate(self.workers or IN_PROCESS_CHECKS, config.max_queued_checks, config.detect_deadline_s,
                         what="the detector")
        absent = runtime.watermark_absent
        self._local = Checks(runtime.detector, runtime.registry, config.trust_anchors, absent)
        self._pool = None
        self._workers_started = None
        if self.workers:
            from pebble import ProcessPool

            context = multiprocessing.get_context("spawn")
            # Spawned workers start one after another, seconds each (import, tokenizer, warm-up): until all
            # have, requests queue on the ready ones. /readyz says when the pool is whole.
            self._workers_started = context.Value("i", 0)

            setup = CheckSetup(tuple(runtime.keyring), runtime.tokenizer, config.alpha, runtime.registry.url,
                               config.retention_days, runtime.registry.min_evidence, config.trust_anchors, absent)
            self._pool = ProcessPool(max_workers=self.workers, initializer=_init_worker,
                                     initargs=(setup, self._workers_started), context=context)
            self._pool.schedule(_started)  # pebble starts its workers on the first task: start them now

    @property
    def workers_ready(self) -> int:
        """Workers that have finished starting (replacements for killed ones count again: at most `workers`)."""
        if self._workers_started is None:
            return 0
        return min(self._workers_started.value, self.workers)

    async def run(self, method: str, *args):
        try:
            return await self._run(method, *args)
        except CheckInputError as err:
            raise ApiError(400, err.code, err.message, param=err.param) from None

    async def _run(self, method: str, *args):
        async with self.gate.slot():
            if self._pool is None:
                return await anyio.to_thread.run_sync(getattr(self._local, method), *args)
            from pebble import ProcessExpired

            # Cancelling the future (the client left) kills the worker too: no orphaned work.
            future = self._pool.schedule(_in_worker, args=(method, *args), timeout=self.deadline_s)
            try:
                return await asyncio.wrap_future(future)
            except TimeoutError:
                raise ApiError(503, "deadline_exceeded", f"the check ran past its {self.deadline_s:g} s deadline and "
                                                         "was stopped; send a shorter text") from None
            except ProcessExpired:
                raise ApiError(503, "worker_failed", "the check's worker process ended; try again",
                               headers={"Retry-After": "1"}) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
