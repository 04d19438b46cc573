"""The sync's page feed: pages in Apple's order, fetched ahead within a bound, errors handed over,
and no thread left behind when the writer stops early (a unit test: the feed takes any callables;
whole syncs through it run against the simulator in test_sync.py and test_sync_failures.py)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest

from portal.servers.page_feed import DEPTH, PageFeed


@dataclass
class Page:
    number: int
    more_to_follow: bool
    cursor: str


class Apple:
    """Pages 1..last from cursor 'c0'; a page's cursor names the next one."""

    def __init__(self, last: int, fail_at: int | None = None):
        self.last, self.fail_at, self.calls = last, fail_at, []

    def fetch(self, phase, cursor):
        number = int(cursor[1:]) + 1
        self.calls.append((phase, cursor))
        if number == self.fail_at:
            raise RuntimeError(f"page {number} failed")
        return Page(number, number < self.last, f"c{number}")


def prepare(page, generation):
    return (page.number, generation, threading.current_thread().name)


def feed_threads():
    return [t for t in threading.enumerate() if t.name.startswith("apple-page")]


def test_pages_arrive_in_order_with_their_rows_prepared_in_another_thread():
    apple = Apple(last=7)
    with PageFeed(apple.fetch, prepare) as feed:
        feed.start("fetch", "c0", generation=3)
        seen = [feed.next() for _ in range(7)]
    assert [page.number for page, _ in seen] == list(range(1, 8))
    assert [rows[:2] for _, rows in seen] == [(n, 3) for n in range(1, 8)]
    assert {rows[2] for _, rows in seen} == {"apple-page-rows_0"}
    assert apple.calls == [("fetch", f"c{n}") for n in range(7)]
    assert not feed_threads()


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_fetching_runs_ahead_of_the_writer_by_at_most_depth_pages():
    apple = Apple(last=100)
    with PageFeed(apple.fetch, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
        assert feed.next()[0].number == 1
        # A slow writer: page 1 taken, DEPTH waiting in the queue, one more fetched and waiting for room.
        assert wait_for(lambda: len(apple.calls) == 1 + DEPTH + 1)
        time.sleep(0.2)
        assert len(apple.calls) == 1 + DEPTH + 1
    assert len(apple.calls) == 1 + DEPTH + 1  # closing stopped it: the pages fetched ahead are dropped
    assert not feed_threads()


def test_starting_again_drops_the_pages_fetched_ahead_for_the_old_run():
    apple = Apple(last=100)
    with PageFeed(apple.fetch, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
        assert feed.next()[0].number == 1
        assert wait_for(lambda: len(apple.calls) == 1 + DEPTH + 1)
        feed.start("sync", "c50", generation=2)
        page, rows = feed.next()
        assert (page.number, rows[:2]) == (51, (51, 2))
        assert feed.next()[0].number == 52


def test_a_failed_conversion_reaches_the_writer():
    def broken(page, generation):
        raise ValueError(f"page {page.number} does not convert")

    with PageFeed(Apple(last=3).fetch, broken) as feed:
        feed.start("fetch", "c0", generation=1)
        with pytest.raises(ValueError, match="page 1 does not convert"):
            feed.next()
    assert not feed_threads()


def test_closing_does_not_wait_for_a_call_still_at_apple():
    release = threading.Event()

    def slow(phase, cursor):
        release.wait(10)
        return Page(1, False, "c1")

    started = time.monotonic()
    with PageFeed(slow, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
    assert time.monotonic() - started < 5  # CLOSE_WAIT_S, not the call's 10 s
    release.set()  # the call ends; the thread, stopped, puts nothing and exits
    assert wait_for(lambda: not feed_threads())


def test_the_writer_is_told_when_the_feed_stops_without_a_page():
    with PageFeed(Apple(last=1).fetch, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
        assert feed.next()[0].number == 1
        with pytest.raises(RuntimeError, match="stopped without a page"):
            feed.next()  # nothing follows the last page: an error, never a wait forever


def test_an_error_reaches_the_writer_after_the_pages_before_it_and_the_feed_can_start_again():
    apple = Apple(last=10, fail_at=3)
    with PageFeed(apple.fetch, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
        assert [feed.next()[0].number for _ in range(2)] == [1, 2]
        with pytest.raises(RuntimeError, match="page 3 failed"):
            feed.next()
        apple.fail_at = None
        feed.start("sync", "c2", generation=1)  # what the sync does after, say, an exhausted cursor
        assert feed.next()[0].number == 3
    assert apple.calls[-1][0] == "sync" and not feed_threads()


@pytest.mark.parametrize("next_cursor", ["c1", ""])
def test_more_to_follow_without_a_new_cursor_stops_the_feed_after_the_page(next_cursor):
    # Asking again with the same cursor would loop forever (reference §6.1; the client's own
    # iter_fetch refuses it too); a missing cursor is kept as the one sent (DevicePage).
    from portal.apple.errors import AppleError

    calls = []

    def stuck(phase, cursor):
        calls.append(cursor)
        return Page(len(calls), True, next_cursor or cursor)

    with PageFeed(stuck, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
        assert feed.next()[0].number == 1
        if next_cursor:
            assert feed.next()[0].number == 2  # c0 -> c1 moved: fine
        with pytest.raises(AppleError, match="did not move the cursor"):
            feed.next()
    assert len(calls) == (2 if next_cursor else 1)


def test_threads_switch_faster_only_while_feeds_run():
    import sys

    before = sys.getswitchinterval()
    first = PageFeed(Apple(last=1).fetch, prepare)
    second = PageFeed(Apple(last=1).fetch, prepare)
    assert sys.getswitchinterval() < before
    first.close()  # closed first, opened first: the other one still runs
    assert sys.getswitchinterval() < before
    second.close()
    assert sys.getswitchinterval() == before


def test_the_writer_is_told_once_when_a_page_is_slow_to_come():
    """So that it commits instead of holding its transaction open while Apple takes its time."""
    gate = threading.Event()
    apple = Apple(last=3)

    def slow_second_page(phase, cursor):
        if cursor == "c1":
            gate.wait(5)
        return apple.fetch(phase, cursor)

    told = []
    with PageFeed(slow_second_page, prepare) as feed:
        feed.start("fetch", "c0", generation=1)
        assert wait_for(lambda: len(apple.calls) >= 1)
        assert feed.next(on_wait=lambda: told.append("first"))[0].number == 1
        assert told == []  # it was there: nothing to say

        def wait_then_open_the_gate():
            told.append("second")
            threading.Timer(0.7, gate.set).start()  # well past a second notice, were there one

        assert feed.next(on_wait=wait_then_open_the_gate)[0].number == 2
        assert told == ["second"]
        assert feed.next()[0].number == 3
