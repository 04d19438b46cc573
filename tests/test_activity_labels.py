"""The activity log reads in words: each action shows its label (its code small beside it, as the CSV export
keeps it), and each object's link says what it does ("Only this object", not "(all)"). Every action code recorded
anywhere in portal/ and jobs/ has a label of its own, so a new code without one fails here."""
from __future__ import annotations

import ast
import csv
import io
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from portal.activity.labels import ACTION_LABELS, action_label
from portal.extensions import db
from portal.models import ActivityEntry
from portal.models.assignment import ACTIONS
from tests.servers_helpers import add_simulated_server

ROOT = Path(__file__).resolve().parent.parent


def _sources() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(encoding="utf-8"), str(path))
            for folder in ("portal", "jobs") for path in sorted((ROOT / folder).rglob("*.py"))}


def _constants(trees) -> dict[str, str]:
    """Every module-level NAME = "text" of the sources (CONFIGURE_FAILED = "profile.configure_failed")."""
    found = {}
    for tree in trees.values():
        for node in tree.body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = node.value.value
    return found


def _codes(node, constants) -> list[str]:
    """The codes an action argument can be: a text, a constant's, both sides of an if/else, or an f-string's
    pattern (its {…} parts: any word), which the test expands."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if isinstance(node, ast.IfExp):
        return _codes(node.body, constants) + _codes(node.orelse, constants)
    if isinstance(node, ast.JoinedStr):
        return ["re:" + "".join(re.escape(part.value) if isinstance(part, ast.Constant) else "[a-z_]+"
                                for part in node.values)]
    raise AssertionError(f"an action code the test cannot read: {ast.dump(node)[:200]}")


def _recorded_codes() -> dict[str, str]:
    """{code or "re:pattern": where} for every record_activity(...) call of portal/ and jobs/."""
    trees = _sources()
    constants = _constants(trees)
    codes = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None))
                    == "record_activity"):
                continue
            argument = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "action")
            for code in _codes(argument, constants):
                codes[code] = f"{path.relative_to(ROOT)}:{node.lineno}"
    return codes


def test_every_recorded_action_code_has_a_label_of_its_own():
    codes = _recorded_codes()
    assert len(codes) > 40  # the scan found the calls (a broken scan would pass with none)
    missing = [f"{code} ({where})" for code, where in codes.items()
               if not code.startswith("re:") and code not in ACTION_LABELS]
    assert not missing, "action codes without a label in portal/activity/labels.py: " + ", ".join(missing)
    for pattern, where in ((c, w) for c, w in codes.items() if c.startswith("re:")):
        assert any(re.fullmatch(pattern[3:], code) for code in ACTION_LABELS), f"{pattern} ({where}) has no label"
    for action in ACTIONS:  # the f-strings of Add Devices, Remove Devices and Release Devices
        assert f"assignment.{action}_requested" in ACTION_LABELS and f"assignment.{action}_finished" in ACTION_LABELS
    assert action_label("assignment.assign_finished") == "Add Devices finished"
    assert action_label("server.account_fetched") == "Apple account details read"


def test_an_unknown_code_reads_humanised_never_an_error():
    assert action_label("thing.went_wrong") == "Thing: went wrong"
    assert action_label("legacy_code") == "Legacy code"
    assert action_label("") == "—" and action_label(None) == "—" and action_label("..") == "—"


def _add(action: str, minutes: int, **fields) -> None:
    db.session.add(ActivityEntry(actor="alice", level="info", action=action, summary=f"Entry {minutes}",
                                 created_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes),
                                 **fields))


def test_the_log_shows_labels_with_the_code_small_and_the_csv_keeps_the_codes(admin_client):
    db.session.execute(ActivityEntry.__table__.delete())
    _add("assignment.assign_finished", 1, object_type="managed_server", object_id=7, object_label="Paris")
    _add("profile.configuration_changed", 2, object_type="enrollment_profile", object_id=3, object_label="Staff")
    _add("legacy.old_code", 3)
    db.session.commit()

    html = admin_client.get("/activity/").get_data(as_text=True)
    assert 'Add Devices finished<br><code class="muted small">assignment.assign_finished</code>' in html
    assert 'Profile out of date at Apple<br><code class="muted small">profile.configuration_changed</code>' in html
    assert 'Legacy: old code<br><code class="muted small">legacy.old_code</code>' in html
    assert "<td><code>" not in html  # no bare code as the action any more

    assert ">(all)<" not in html
    link = re.search(r'<a class="muted small" href="/activity/\?kind=managed_server&amp;object=7"\s+'
                     r'aria-label="([^"]+)">([^<]+)</a>', html)
    assert link and link.group(2) == "Only this object"
    assert link.group(1) == "Only this object: all activity of Paris"  # the visible words begin its name
    one = admin_client.get("/activity/?kind=managed_server&object=7").get_data(as_text=True)
    assert "Entry 1" in one and "Entry 2" not in one and ">Only this object<" not in one

    lines = list(csv.reader(io.StringIO(admin_client.get("/activity/activity.csv").get_data(as_text=True))))
    assert [line[2] for line in lines[1:]] == ["legacy.old_code", "profile.configuration_changed",
                                               "assignment.assign_finished"]


def test_a_servers_activity_card_names_each_action(htmx, apple, run_jobs):
    paris = add_simulated_server(htmx, apple, 1, run_jobs=run_jobs)
    html = htmx.get(f"/servers/{paris.id}").get_data(as_text=True)
    assert '<span class="activity-action" title="server.added">Add Server</span> · Added managed server Paris' in html
    log = htmx.get("/activity/").get_data(as_text=True)
    assert 'Add Server<br><code class="muted small">server.added</code>' in log
