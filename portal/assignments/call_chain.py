"""The calls of one assignment batch to Apple, back to back in a thread of their own.

The runner hands chunks over as it reads them and stores answers as they come back. The thread
sends each chunk the moment Apple has answered the previous one, so the calls never wait for the
runner's database work, nor for the GIL slices it takes (the interval is shortened meanwhile, see
portal/switch_interval.py). Before each call the thread asks whether the batch still wants it
(for an assignment: whether its profile still exists), so a profile deleted while a call is at
Apple stops the next one from going out with the profile's old UUID.

After a call fails, nothing more is sent: the chunks handed over behind it stay queued in the
database, never answered, and are sent by a later run.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Generic, TypeVar

from .. import switch_interval

CLOSE_WAIT_S = 1.0  # closing does not wait out a call to Apple (and its retries) still under way

Chunk = TypeVar("Chunk")


class CallFailed(Exception):
    """A call raised: `chunk` is the one it was for (Apple may or may not have acted on it)."""

    def __init__(self, chunk, error: BaseException):
        super().__init__(str(error))
        self.chunk, self.error = chunk, error


class CallChain(Generic[Chunk]):
    """`call(chunk)` → answers, `still_wanted()` → bool; a context manager."""

    def __init__(self, call: Callable[[Chunk], object], still_wanted: Callable[[], bool]):
        self._call, self._still_wanted = call, still_wanted
        self._todo: queue.Queue = queue.Queue()
        self._done: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.in_flight = 0  # handed over and not answered yet
        switch_interval.shorten()
        self._thread = threading.Thread(target=self._run, name="apple-assign", daemon=True)
        self._thread.start()

    def send(self, chunk: Chunk) -> None:
        """Queue a call for this chunk, sent once the ones handed over before it are answered."""
        self.in_flight += 1
        self._todo.put(chunk)

    def answer(self) -> tuple[Chunk, object | None]:
        """(chunk, Apple's answers) in the order handed over; answers None when it was not sent
        because the batch was no longer wanted. Raises CallFailed when the call raised."""
        while True:
            try:
                chunk, answers, error = self._done.get(timeout=0.5)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._done.empty():
                    raise RuntimeError("the calls to Apple stopped without an answer or an error") from None
        self.in_flight -= 1
        if error is not None:
            raise CallFailed(chunk, error) from error
        return chunk, answers

    def close(self) -> None:
        try:
            self._stop.set()  # chunks still handed over are never sent
            self._todo.put(None)
            self._thread.join(timeout=CLOSE_WAIT_S)
        finally:
            switch_interval.restore()

    def __enter__(self) -> CallChain:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self) -> None:
        wanted = True
        while (chunk := self._todo.get()) is not None and not self._stop.is_set():
            try:
                wanted = wanted and self._still_wanted()
                self._done.put((chunk, self._call(chunk) if wanted else None, None))
            except BaseException as exc:  # noqa: BLE001 - handed to the runner, which decides
                self._done.put((chunk, None, exc))
                return
