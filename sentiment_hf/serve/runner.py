"""Run model inference off the event loop: a thread pool, or a micro-batching queue.

Both take ``predict_proba(texts) -> probabilities`` and are awaited by the request handlers, so a
slow model call never blocks the event loop (health checks and other requests keep flowing).

* :class:`ThreadPoolRunner` runs each request's texts as its own model call in a worker thread.
* :class:`MicroBatchRunner` puts requests on an asyncio queue; each of its loops joins whatever
  requests are waiting (up to ``micro_batch_size`` texts, waiting at most ``max_wait_ms`` for
  company)
  into one model call in its worker thread, then hands each request its slice. Under
  concurrency this pads a little but calls the model less often.

Both run ``inference_threads`` model calls at once (each call's own intra-op threads are the
predictor's business); docs/results.md has the measured comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from sentiment_hf.errors import SentimentError

log = logging.getLogger(__name__)

PredictFn = Callable[[Sequence[str]], np.ndarray]
#: Called after each model call with (number of texts, seconds).
BatchHook = Callable[[int, float], None]
RUNNERS = ("batch", "threadpool")


class Runner(Protocol):
    """What the app needs from an inference runner."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def run(self, texts: Sequence[str]) -> np.ndarray: ...


class _Timed:
    def __init__(self, predict: PredictFn, hook: BatchHook | None) -> None:
        self.predict = predict
        self.hook = hook

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        out = self.predict(texts)
        if self.hook is not None:
            self.hook(len(texts), time.perf_counter() - start)
        return out


class ThreadPoolRunner:
    """One model call per request, in a pool of ``inference_threads`` worker threads."""

    def __init__(
        self, predict: PredictFn, inference_threads: int = 1, on_batch: BatchHook | None = None
    ) -> None:
        self._call = _Timed(predict, on_batch)
        self.inference_threads = inference_threads
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(self.inference_threads, thread_name_prefix="inference")

    async def stop(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, texts: Sequence[str]) -> np.ndarray:
        if self._executor is None:
            raise RuntimeError("runner not started")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._call, list(texts)
        )


class MicroBatchRunner:
    """Join concurrent requests into model calls of up to ``micro_batch_size`` texts.

    ``inference_threads`` batching loops share the queue, each with its own inference thread, so
    while one batch runs the next one gathers and runs on another core.
    """

    def __init__(
        self,
        predict: PredictFn,
        micro_batch_size: int = 64,
        max_wait_ms: float = 0.0,
        on_batch: BatchHook | None = None,
        inference_threads: int = 1,
    ) -> None:
        self._call = _Timed(predict, on_batch)
        self.micro_batch_size = micro_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.inference_threads = inference_threads
        self._queue: asyncio.Queue[tuple[list[str], asyncio.Future[np.ndarray]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(self.inference_threads, thread_name_prefix="inference")
        self._tasks = [
            asyncio.create_task(self._loop(), name=f"micro-batcher-{i}")
            for i in range(self.inference_threads)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def run(self, texts: Sequence[str]) -> np.ndarray:
        if self._queue is None:
            raise RuntimeError("runner not started")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((list(texts), future))
        return await future

    async def _gather(self) -> list[tuple[list[str], asyncio.Future[np.ndarray]]]:
        assert self._queue is not None
        items = [await self._queue.get()]
        count = len(items[0][0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while count < self.micro_batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            items.append(item)
            count += len(item[0])
        return items

    async def _predict(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, texts)

    async def _loop(self) -> None:
        while True:
            items = [item for item in await self._gather() if not item[1].done()]
            if not items:
                continue
            texts = [text for batch, _ in items for text in batch]
            try:
                probs = await self._predict(texts)
            except Exception as exc:
                if len(items) == 1:
                    _settle(items[0][1], exc=exc)
                    continue
                # One bad request must not fail its neighbours: retry each one alone.
                for batch, future in items:
                    try:
                        _settle(future, await self._predict(batch))
                    except Exception as single_exc:
                        _settle(future, exc=single_exc)
                continue
            offset = 0
            for batch, future in items:
                _settle(future, probs[offset : offset + len(batch)])
                offset += len(batch)


def _settle(
    future: asyncio.Future[np.ndarray],
    result: np.ndarray | None = None,
    exc: BaseException | None = None,
) -> None:
    if future.done():  # the client went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def build_runner(
    kind: str,
    predict: PredictFn,
    *,
    inference_threads: int = 1,
    micro_batch_size: int = 64,
    max_wait_ms: float = 0.0,
    on_batch: BatchHook | None = None,
) -> Runner:
    """The runner named ``kind`` ("batch" or "threadpool") running ``inference_threads`` model
    calls at once (``micro_batch_size`` is the batch runner's most texts per call)."""
    if kind == "batch":
        return MicroBatchRunner(
            predict,
            micro_batch_size=micro_batch_size,
            max_wait_ms=max_wait_ms,
            on_batch=on_batch,
            inference_threads=inference_threads,
        )
    if kind == "threadpool":
        return ThreadPoolRunner(predict, inference_threads=inference_threads, on_batch=on_batch)
    raise SentimentError(f"unknown runner {kind!r}; choose one of {', '.join(RUNNERS)}")
