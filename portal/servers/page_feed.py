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
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

DEPTH = 3  # pages fetched ahead of the one being written
SWITCH_INTERVAL_S = 0.0005


class PageFeed:
    """`fetch(phase, cursor)` → page, `prepare(page, generation)` → rows; a context manager."""

    def __init__(self, fetch: Callable, prepare: Callable):
        self._fetch, self._prepare = fetch, prepare
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apple-page-rows")
        self._pages: queue.Queue = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))

    def start(self, phase: str, cursor: str | None, generation: int) -> None:
        """Fetch from `cursor` on, until a page says no more follow or a call fails."""
        self._halt()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(phase, cursor, generation),
                                        name="apple-page-fetch", daemon=True)
        self._thread.start()

    def next(self):
        """(page, prepared rows) in Apple's order; raises what the call to Apple raised."""
        page, rows, error = self._pages.get()
        if error is not None:
            raise error
        return page, rows.result()

    def close(self) -> None:
        self._halt()
        self._preparer.shutdown(wait=True, cancel_futures=True)
        sys.setswitchinterval(self._switch_interval)

    def __enter__(self) -> PageFeed:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self, phase: str, cursor: str | None, generation: int) -> None:
        while not self._stop.is_set():
            try:
                page = self._fetch(phase, cursor)
            except BaseException as exc:  # noqa: BLE001 - handed to the writer, which decides
                self._put((None, None, exc))
                return
            self._put((page, self._preparer.submit(self._prepare, page, generation), None))
            if not page.more_to_follow:
                return
            cursor = page.cursor

    def _put(self, item: tuple) -> None:
        while not self._stop.is_set():
            try:
                self._pages.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _halt(self) -> None:
        """Stop the fetching thread and forget the pages it fetched ahead (never written)."""
        self._stop.set()
        if self._thread is not None:
            while self._thread.is_alive():
                self._drain()
                self._thread.join(timeout=0.05)
            self._thread = None
        self._drain()

    def _drain(self) -> None:
        try:
            while True:
                _, rows, _ = self._pages.get_nowait()
                if isinstance(rows, Future):
                    rows.cancel()
        except queue.Empty:
            pass
