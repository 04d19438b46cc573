"""The assignment runner's calling thread (portal/assignments/call_chain.py): calls in the order
handed over, each right after the previous answer; nothing sent after a failure, after the batch
stopped being wanted, or after close."""
from __future__ import annotations

import sys
import threading

import pytest

from portal.assignments.call_chain import CallChain, CallFailed


def test_answers_come_back_in_order_and_the_next_call_does_not_wait_for_the_reader():
    sent, second_sent = [], threading.Event()

    def call(chunk):
        sent.append(chunk)
        if chunk == "b":
            second_sent.set()
        return chunk.upper()

    with CallChain(call, lambda: True) as chain:
        chain.send("a")
        chain.send("b")
        # "b" goes out although nobody has asked for the answer to "a" yet.
        assert second_sent.wait(5)
        assert chain.answer() == ("a", "A")
        assert chain.answer() == ("b", "B")
        assert chain.in_flight == 0
    assert sent == ["a", "b"]


def test_after_a_failed_call_nothing_more_is_sent():
    sent = []

    def call(chunk):
        sent.append(chunk)
        if chunk == "a":
            raise ConnectionError("Apple went away")
        return chunk

    with CallChain(call, lambda: True) as chain:
        chain.send("a")
        chain.send("b")
        with pytest.raises(CallFailed) as failed:
            chain.answer()
        assert failed.value.chunk == "a" and isinstance(failed.value.error, ConnectionError)
    assert sent == ["a"]


def test_once_the_batch_is_not_wanted_the_rest_comes_back_unsent():
    sent, wanted = [], iter([True, False])

    with CallChain(lambda chunk: sent.append(chunk) or chunk, lambda: next(wanted)) as chain:
        for chunk in "abc":
            chain.send(chunk)
        assert [chain.answer() for _ in "abc"] == [("a", "a"), ("b", None), ("c", None)]
    assert sent == ["a"]  # asked once more, then never again


def test_close_sends_nothing_still_handed_over_and_restores_the_switch_interval():
    before = sys.getswitchinterval()
    release, at_apple, sent = threading.Event(), threading.Event(), []

    def call(chunk):
        sent.append(chunk)
        at_apple.set()
        release.wait(5)
        return chunk

    chain = CallChain(call, lambda: True)
    assert sys.getswitchinterval() < before
    chain.send("a")
    chain.send("b")
    assert at_apple.wait(5)
    chain.close()  # "a" is at Apple: closing waits at most a second for it, "b" never goes out
    release.set()
    chain._thread.join(5)
    assert sent == ["a"]
    assert sys.getswitchinterval() == before
