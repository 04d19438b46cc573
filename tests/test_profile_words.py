"""Create Profile's words as the rest of the portal writes them: Apple's family names keep their capitals in the
activity log, and a count of certificates is a number with a noun that agrees with it."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEntry
from tests.servers_helpers import Identity
from tests.test_profiles import add_server, assign_configuration, create, make_configuration


@pytest.fixture
def server_id(htmx, apple, run_jobs) -> int:
    return add_server(htmx, apple, Identity(), run_jobs)


def _created_summary(name: str) -> str:
    db.session.expire_all()
    return db.session.execute(select(ActivityEntry.summary).where(
        ActivityEntry.action == "profile.created", ActivityEntry.summary.contains(name))).scalar_one()


def test_a_default_profiles_activity_entry_keeps_apples_family_names(htmx, server_id):
    """It said "(default for new iphone and apple tv devices)": the whole label was lowered for the sentence."""
    assert create(htmx, server_id, name="Phones", is_default="y", default_families=["iPhone", "AppleTV"]).status_code == 204
    assert _created_summary("Phones").endswith("(default for new iPhone and Apple TV devices)")
    assert create(htmx, server_id, name="Others", is_default="y").status_code == 204
    assert _created_summary("Others").endswith("(default for new devices other than iPhone and Apple TV)")


@pytest.mark.parametrize("certificates, words", [(1, "with its 1 trusted certificate."),
                                                 (2, "with its 2 trusted certificates.")])
def test_create_profile_counts_the_trusted_certificates_in_words(htmx, server_id, certificates, words):
    """"with its 1 trusted certificate(s)" was the only "(s)" an admin met in the portal."""
    configuration_id, _ = make_configuration(certificates=certificates)
    assign_configuration(htmx, server_id, configuration_id)
    html = " ".join(htmx.get(f"/servers/{server_id}/profiles/new").get_data(as_text=True).split())
    assert words in html and "(s)" not in html
