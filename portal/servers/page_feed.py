"""Apple's device pages, fetched back to back in a thread while the sync writes earlier ones.

Each request starts as soon as the previous page has arrived (its cursor is all it needs), so the
chain of calls to Apple never waits for the database, nor for the conversion of a page to rows,
which a second thread does (pure Python: in the fetching thread it would delay the next request).
At most DEPTH pages wait to be written, so memory stays flat however many devices a server has.
The writer decides what follows the last page or an error (another phase, a fresh fetch) and
starts the feed again.

While a feed runs, the interpreter hands the GIL between threads every 0.5 ms instead of 5 ms:
the fetching thread needs it back after each of the dozens of network reads a page takes, and
waiting out the writer's and the converter's time slices each time made every call to Apple
slower (a full sync of 100,000 devices on two cores took about 5 % less time with the shorter
interval, in each of seven interleaved pairs of runs).
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from ..apple.errors import AppleError

DEPTH = 3  # pages fetched ahead of the one being written
SWITCH_INTERVAL_S = 0.0005
CLOSE_WAIT_S = 1.0  # closing does not wait out a call to Apple (and its retries) still under way
WAIT_NOTICE_S = 0.5  # a page not there by then is worth telling the writer about (next's on_wait)

_interval_lock = threading.Lock()
_feeds_running = 0
_interval_before = sys.getswitchinterval()


class PageFeed:
    """`fetch(phase, cursor)` → page, `prepare(page, generation)` → rows; a context manager."""

    def __init__(self, fetch: Callable, prepare: Callable):
        self._fetch, self._prepare = fetch, prepare
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apple-page-rows")
        self._pages: queue.Queue = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        _shorter_switch_interval()

    def start(self, phase: str, cursor: str | None, generation: int) -> None:
        """Fetch from `cursor` on, until a page says no more follow or a call fails."""
        self._halt(wait=None)
        self._stop = threading.Event()  # each run its own: a thread left behind never sees a new one
        self._thread = threading.Thread(target=self._run, args=(phase, cursor, generation, self._stop),
                                        name="apple-page-fetch", daemon=True)
        self._thread.start()

    def next(self, on_wait: Callable[[], None] | None = None):
        """(page, prepared rows) in Apple's order; raises what the call to Apple raised.

        `on_wait` is called once (in this thread) when the page is not there within WAIT_NOTICE_S:
        Apple is slow, and the writer should not hold its transaction open meanwhile.
        """
        noticed = on_wait is None
        while True:
            try:
                page, rows, error = self._pages.get(timeout=WAIT_NOTICE_S)
                break
            except queue.Empty:
                if not noticed:
                    noticed = True
                    on_wait()
                if self._thread is None or not self._thread.is_alive():
                    if self._pages.empty():  # (re-checked: it may have put its last item meanwhile)
                        raise RuntimeError("the page feed stopped without a page or an error") from None
        if error is not None:
            raise error
        return page, rows.result()

    def close(self) -> None:
        try:
            self._halt(wait=CLOSE_WAIT_S)
            self._preparer.shutdown(wait=True, cancel_futures=True)  # pure Python: done in milliseconds
        finally:
            _restore_switch_interval()

    def __enter__(self) -> PageFeed:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self, phase: str, cursor: str | None, generation: int, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                page = self._fetch(phase, cursor)
                self._put((page, self._preparer.submit(self._prepare, page, generation), None), stop)
                if not page.more_to_follow:
                    return
                if not page.cursor or page.cursor == cursor:  # asking again would loop forever
                    raise AppleError("Apple said more devices follow but did not move the cursor; "
                                     "try the sync again later.")
                cursor = page.cursor
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which decides
            self._put((None, None, exc), stop)

    def _put(self, item: tuple, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._pages.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _halt(self, wait: float | None) -> None:
        """Stop the fetching thread and forget the pages it fetched ahead (never written).

        `wait` None: until it has stopped. Otherwise at most that long: a thread still in a call
        to Apple is left to finish it on its own (it puts nothing once stopped)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        deadline = None if wait is None else time.monotonic() + wait
        while thread is not None and thread.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._drain()
            thread.join(timeout=0.05)
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                _, rows, _ = self._pages.get_nowait()
                if isinstance(rows, Future):
                    rows.cancel()
        except queue.Empty:
            pass


def _shorter_switch_interval() -> None:
    """Process-wide, so counted: the first feed shortens it, the last one to close restores it."""
    global _feeds_running, _interval_before
    with _interval_lock:
        if _feeds_running == 0:
            _interval_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_interval_before, SWITCH_INTERVAL_S))
        _feeds_running += 1


def _restore_switch_interval() -> None:
    global _feeds_running
    with _interval_lock:
        _feeds_running -= 1
        if _feeds_running == 0:
            sys.setswitchinterval(_interval_before)
