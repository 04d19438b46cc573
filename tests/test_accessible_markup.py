"""What a screen reader is told about every page and pop-up, read from their HTML: each table has a name (its
caption), so that a list of the page's tables says which is which, and each control whose text has no words
(✕, ›) has a label.

Every GET rule is fetched with the route sweep's shop (one of everything, more than a page of lists), as a page
and as the htmx fragment a pop-up or a list refresh gets.
"""
from __future__ import annotations

import re
import tempfile

import pytest

from portal import create_app
from tests.test_route_sweep import auth, shop, urls  # noqa: F401  (fixtures)

TABLE = re.compile(r"<table\b([^>]*)>\s*(<caption\b[^>]*>(.*?)</caption>)?", re.S)
CONTROL = re.compile(r"<(a|button)\b([^>]*)>(.*?)</\1>", re.S)


def _pages() -> list[tuple[str, str]]:
    """(rule, endpoint) of every rule answering GET with HTML, read from an app built for this purpose only."""
    with tempfile.TemporaryDirectory() as instance:
        app = create_app({"TESTING": True, "INSTANCE_PATH": instance, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                          "REDIS_URL": "redis://127.0.0.1:9/0"})
        return sorted((rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
                      if "GET" in rule.methods and rule.endpoint != "static" and not rule.rule.endswith((".csv", ".pem")))


GETS = _pages()


def _problems(html: str) -> list[str]:
    problems = []
    for match in TABLE.finditer(html):
        attributes, caption = match.group(1), match.group(3)
        if not (caption and re.sub(r"<[^>]+>", "", caption).strip()) and "aria-label" not in attributes:
            problems.append(f"a table without a caption: {match.group(0)[:120]!r}")
    for match in CONTROL.finditer(html):
        attributes, text = match.group(2), re.sub(r"<[^>]+>", "", match.group(3))
        if not re.search(r"\w", text) and "aria-label=" not in attributes:
            problems.append(f"a control without words or a label: {match.group(0)[:120]!r}")
    return problems


@pytest.mark.parametrize("rule,endpoint", GETS, ids=[f"{rule} {endpoint}" for rule, endpoint in GETS])
def test_tables_are_named_and_controls_without_words_are_labelled(rule, endpoint, app, client, auth, shop):  # noqa: F811
    assert auth.login().status_code == 302
    good, _ = urls(rule, shop)
    problems = []
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(good, headers=headers)
        if response.status_code < 300 and response.mimetype == "text/html":
            problems += [f"{'htmx ' if headers else ''}GET {good}: {p}" for p in _problems(response.get_data(as_text=True))]
    assert not problems, "\n".join(problems)
