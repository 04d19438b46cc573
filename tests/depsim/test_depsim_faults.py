"""Switchable faults: 5xx bursts, quoted bodies, latency, and their value shapes."""
from __future__ import annotations

import pytest

from portal.depsim import faults


def test_server_error_for_n_calls_then_recovery(make_caller, depsim):
    caller = make_caller()
    depsim.state.set_fault("Test Server", "server_error", 2)
    first, second = caller.call("GET", "/account"), caller.call("GET", "/account")
    assert (first.status_code, first.text, second.status_code) == (500, "SERVER_ERROR", 500)
    assert "Retry-After" not in first.headers
    assert caller.call("GET", "/account").status_code == 200
    assert "server_error" not in depsim.state.faults("Test Server")


def test_server_error_503_with_retry_after_also_hits_session(make_caller, depsim):
    caller = make_caller(login=False)
    depsim.state.set_fault("Test Server", "server_error", {"count": 1, "status": 503, "retry_after": 7})
    response = caller.session()
    assert (response.status_code, response.text, response.headers["Retry-After"]) == (503, "SERVER_ERROR", "7")
    assert caller.session().status_code == 200


def test_quote_errors_like_depsim(make_caller, depsim):
    caller = make_caller(devices=1)
    depsim.state.set_fault("Test Server", "quote_errors", True)
    response = caller.call("POST", "/devices/sync", {"cursor": "garbage!"})
    assert (response.status_code, response.text) == (400, '"INVALID_CURSOR"')


def test_latency_fault_still_answers(make_caller, depsim):
    caller = make_caller()
    depsim.state.set_fault("Test Server", "latency", 0.2)
    assert depsim.state.faults("Test Server")["latency"] == 0.2
    assert caller.call("GET", "/account").status_code == 200


@pytest.mark.parametrize("fault, value, stored", [
    ("terms_not_signed", True, True),
    ("terms_not_signed", "off", None),
    ("latency", "1.5", 1.5),
    ("server_error", 3, {"count": 3, "status": 500}),
    ("server_error", 0, None),
    ("throttle", ["B", "A"], {"serials": ["A", "B"], "fraction": 0.0, "retry_after": 30}),
    ("throttle", 0.25, {"serials": [], "fraction": 0.25, "retry_after": 30}),
    ("assign_failed", "A, B", ["A", "B"]),
    ("assign_failed", None, None),
])
def test_fault_value_shapes(fault, value, stored):
    assert faults.normalize(fault, value) == stored


@pytest.mark.parametrize("fault, value", [
    ("no_such_fault", True), ("server_error", {"count": 1, "status": 404}), ("throttle", {"fraction": 2}),
    ("latency", -1), ("assign_failed", [1, 2]),
])
def test_bad_fault_values_are_refused(fault, value):
    with pytest.raises(ValueError):
        faults.normalize(fault, value)


def test_faults_are_per_server(make_caller, depsim):
    broken = make_caller("Broken")
    healthy = make_caller("Healthy")
    depsim.state.set_fault("Broken", "access_denied", True)
    assert broken.call("GET", "/account").status_code == 403
    assert healthy.call("GET", "/account").status_code == 200
