"""The /_sim/ control API, the HTML page, the CLI commands and token files the portal can decrypt."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests
from flask import Flask

from portal.depsim.cli import depsim_cli
from portal.depsim.state import SimState

from .conftest import AppleCaller

FILENAME = re.compile(r'attachment; filename="(.+)_Token_(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ)_smime\.p7m"')


def test_servers_devices_and_events_through_the_control_api(depsim):
    url = depsim.url + "/_sim"
    created = requests.post(url + "/servers", json={"name": "Ctl", "devices": 3, "seed": 7})
    assert created.status_code == 201 and created.json()["device_count"] == 3
    assert requests.post(url + "/servers", json={"name": "Ctl"}).status_code == 400
    requests.post(url + "/servers", json={"name": "Ctl2"})
    added = requests.post(url + "/servers/Ctl/devices", json={"count": 1, "serials": ["F2LZZZZZZZZZ"]}).json()
    assert len(added["added"]) == 2 and "F2LZZZZZZZZZ" in added["added"]
    serials = [d["serial"] for d in requests.get(url + "/servers/Ctl/devices").json()["devices"]]
    assert len(serials) == 5
    assert requests.post(url + "/devices/move", json={"serials": serials[:1], "to": "Ctl2"}).json() == {
        "moved": serials[:1]}
    assert requests.post(url + "/devices/release", json={"serials": serials[1:2]}).json()["released"] == serials[1:2]
    assert requests.post(url + "/devices/push", json={"serials": serials[2:3]}).json()["pushed"] == []  # no profile
    events = requests.get(url + "/servers/Ctl/events").json()["events"]
    assert [e["op_type"] for e in events] == ["added"] * 5 + ["deleted", "deleted"]
    assert requests.get(url + "/devices/" + serials[0]).json()["server_id"] == \
        requests.get(url + "/servers/Ctl2").json()["id"]
    assert requests.get(url + "/servers/Nope").status_code == 404
    assert requests.post(url + "/devices/release", json={"serials": ["UNKNOWN"]}).status_code == 404


def test_faults_clock_and_settings_through_the_control_api(depsim):
    url = depsim.url + "/_sim"
    requests.post(url + "/servers", json={"name": "F"})
    body = requests.put(url + "/servers/F/faults", json={"throttle": 0.5, "terms_not_signed": True}).json()
    assert body["faults"]["terms_not_signed"] is True and body["faults"]["throttle"]["fraction"] == 0.5
    assert requests.put(url + "/servers/F/faults", json={"bogus": 1}).status_code == 400
    assert requests.delete(url + "/servers/F/faults").json() == {"faults": {}}
    before = depsim.state.now()
    after = requests.post(url + "/clock", json={"advance_days": 8}).json()
    assert after["offset_seconds"] >= 8 * 86400 and (depsim.state.now() - before).days == 8
    assert requests.post(url + "/clock", json={"set": None}).json()["offset_seconds"] == 0
    assert requests.put(url + "/settings", json={"session_rotate_every": 5}).json()["session_rotate_every"] == 5
    assert depsim.state.settings()["session_rotate_every"] == 5


def test_state_written_by_another_process_is_live(depsim):
    script = ("import json, sys; from portal.depsim.state import SimState; s = SimState(sys.argv[1]); "
              "c = s.issue_credentials('Elsewhere', devices=3); s.advance_clock(86400); print(json.dumps(c))")
    done = subprocess.run([sys.executable, "-c", script, str(depsim.state.state_dir)],
                          capture_output=True, text=True, timeout=120, check=True)
    caller = AppleCaller(depsim.url, json.loads(done.stdout))
    caller.login()
    devices, _ = caller.all_devices()
    assert len(devices) == 3
    assert requests.get(depsim.url + "/_sim/clock").json()["offset_seconds"] >= 86400


def test_token_upload_gives_a_file_the_portal_can_decrypt(depsim, key_and_cert):
    tokens = pytest.importorskip("portal.apple.tokens")
    key, cert_pem = key_and_cert
    url = depsim.url + "/_sim/servers/Uploaded/token?devices=4"
    response = requests.post(url, files={"certificate": ("cert.pem", cert_pem)})
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pkcs7-mime"
    match = FILENAME.fullmatch(response.headers["Content-Disposition"])
    assert match and match.group(1) == "Uploaded"
    assert response.content.startswith(b"Content-Type: application/pkcs7-mime")
    token = tokens.decrypt_token(response.content, key)
    assert token.consumer_key == depsim.state.credentials("Uploaded")["consumer_key"]
    assert depsim.state.server("Uploaded")["device_count"] == 4
    caller = AppleCaller(depsim.url, {"consumer_key": token.consumer_key, "consumer_secret": token.consumer_secret,
                                      "access_token": token.access_token, "access_secret": token.access_secret})
    assert caller.login()
    assert requests.post(url, data=b"not a certificate").status_code == 400


def test_html_page_lists_servers_and_issues_tokens(depsim, key_and_cert):
    depsim.state.create_server("Shown", devices=12)
    page = requests.get(depsim.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "Shown" in page.text and "<td>12</td>" in page.text
    created = requests.post(depsim.url + "/_sim/ui/servers", data={"name": "From form", "devices": "2"})
    assert created.status_code == 200 and "From form" in created.text  # followed the redirect
    response = requests.post(depsim.url + "/_sim/ui/token", data={"name": "From form"},
                             files={"certificate": ("c.pem", key_and_cert[1])})
    assert response.status_code == 200 and FILENAME.fullmatch(response.headers["Content-Disposition"])
    toggled = requests.post(depsim.url + "/_sim/ui/faults",
                            data={"name": "Shown", "access_denied": "on", "server_error": "2"})
    assert toggled.status_code == 200
    assert depsim.state.faults("Shown") == {"access_denied": True, "server_error": {"count": 2, "status": 500}}


def _cli_app(state_dir) -> Flask:
    app = Flask("cli-test")
    app.config["DEPSIM_STATE_DIR"] = str(state_dir)
    app.cli.add_command(depsim_cli)
    return app


def test_cli_issue_token_writes_a_decryptable_file(tmp_path, key_and_cert):
    tokens = pytest.importorskip("portal.apple.tokens")
    key, cert_pem = key_and_cert
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    runner = _cli_app(tmp_path / "state").test_cli_runner()
    args = ["depsim", "issue-token", "--cert", str(tmp_path / "cert.pem"), "--out", str(tmp_path / "t.p7m"),
            "--server", "CLI Server", "--devices", "7"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "Created server with 7 devices" in result.output and "CLI Server" in result.output
    first = tokens.decrypt_token((tmp_path / "t.p7m").read_bytes(), key)
    state = SimState(tmp_path / "state")  # another "process" sees what the CLI wrote
    assert state.server("CLI Server")["device_count"] == 7
    assert state.credentials("CLI Server")["access_token"] == first.access_token
    again = runner.invoke(args=args)
    assert again.exit_code == 0 and "Issued a new token" in again.output
    second = tokens.decrypt_token((tmp_path / "t.p7m").read_bytes(), key)
    assert second.access_token != first.access_token and state.token_retired(first.access_token)


def test_cli_rejects_a_non_certificate(tmp_path):
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    runner = _cli_app(tmp_path / "state").test_cli_runner()
    result = runner.invoke(args=["depsim", "issue-token", "--cert", str(tmp_path / "key.pem"),
                                 "--out", str(tmp_path / "t.p7m")])
    assert result.exit_code != 0 and not (tmp_path / "t.p7m").exists()
    assert SimState(tmp_path / "state").servers() == []


def test_bad_upload_keeps_the_current_token(depsim, key_and_cert):
    depsim.state.issue_token("Kept", key_and_cert[1])
    before = depsim.state.credentials("Kept")
    with pytest.raises(ValueError):
        depsim.state.issue_token("Kept", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert depsim.state.credentials("Kept") == before
