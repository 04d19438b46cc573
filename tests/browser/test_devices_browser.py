"""Managed Devices in a real browser: the filter form, the table htmx replaces and the URL it pushes say the same
thing, whatever the admin used last (a sort header, a filter, the Back button)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.servers_helpers import Identity, post_add_server
from tests.test_assignments import SIM

pytestmark = pytest.mark.browser


@pytest.fixture
def fleet(htmx, apple, run_jobs):
    """Paris, synchronized: 130 devices of several models."""
    identity = Identity()
    token = apple.state.issue_token(SIM, identity.certificate_pem, devices=130)
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    assert run_jobs() == []


def test_a_search_after_a_sort_header_keeps_that_sort(signed_in_page: Page, fleet):
    page = signed_in_page
    page.goto("/devices")
    page.locator("#device-table").get_by_role("link", name="Model", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=model"))
    expect(page.get_by_label("Sort by")).to_have_value("model")

    page.get_by_label("Search").fill("C0")  # the Macs' serial numbers
    expect(page).to_have_url(re.compile(r"q=C0"))
    expect(page).to_have_url(re.compile(r"sort=model"))
    expect(page.locator("#device-table").get_by_role("columnheader", name=re.compile("^Model"))).to_have_attribute(
        "aria-sort", "ascending")
