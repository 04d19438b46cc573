"""The search of a profile's devices (profile page, "Managed devices"): it narrows the list by DeviceQuery's `q`
(serial number prefix, model or description), lives in the URL and its pager, and Select all then stands for the
matching devices only, up to Remove Devices at the simulator."""
from __future__ import annotations

import html as htmllib
import re

from portal.assignments import queries
from portal.models import Device
from tests.assignments_helpers import devices_of, latest_batch, paris, pick, tasks_of  # noqa: F401 - paris is a fixture

ROW = re.compile(r'<label for="pd-\d+"><code>([^<]+)</code></label>')


def matches(device: Device, q: str) -> bool:
    """What the search box finds, said plainly: the serial number starts with it, or the model or description holds it."""
    return (device.serial_number.startswith(q.upper())
            or any(q.lower() in (text or "").lower() for text in (device.model, device.description)))


def associate(htmx, run_jobs, profile, devices) -> None:
    """Add Devices through the pop-up, answered by the simulator."""
    assert pick(htmx, profile, [d.id for d in devices]).status_code == 204
    assert run_jobs() == []


def section(htmx, profile, **args) -> str:
    return htmx.get(f"/profiles/{profile.id}/devices", query_string=args).get_data(as_text=True)


def words(html: str) -> str:
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", html)).split())


def searched_fleet(htmx, run_jobs, paris, at_least: int = 2):
    """Paris's 14 devices all associated with Sales, and a model word some of them match:
    (server, profile, the devices by serial number, the word, the matching devices' serial numbers)."""
    server, profile = paris(devices=14)
    devices = sorted(devices_of(server.id).values(), key=lambda d: d.serial_number)
    associate(htmx, run_jobs, profile, devices)
    model = a_model(devices, at_least=at_least)
    return server, profile, devices, model, sorted(d.serial_number for d in devices if matches(d, model))


def a_model(devices: list[Device], at_least: int = 2) -> str:
    """A model name's word that some of the devices (not all) match: the search narrows by it."""
    for word in ("iPhone", "iPad", "Mac", "Apple"):
        n = sum(matches(d, word) for d in devices)
        if at_least <= n < len(devices):
            return word
    raise AssertionError([d.model for d in devices])


def test_a_search_by_serial_number_prefix_or_by_model_narrows_the_list(htmx, paris, run_jobs):
    server, profile = paris(devices=16)
    devices = sorted(devices_of(server.id).values(), key=lambda d: d.serial_number)
    mine, others = devices[:12], devices[12:]
    associate(htmx, run_jobs, profile, mine)

    prefix = mine[3].serial_number[:4]
    expected = [d.serial_number for d in mine if d.serial_number.startswith(prefix)]
    html = section(htmx, profile, q=prefix.lower())  # the serial number in any case, as on Managed Devices
    assert ROW.findall(html) == expected
    text = words(html)
    n = len(expected)
    assert f"{n} of 12 devices associated with this profile {'matches' if n == 1 else 'match'} “{prefix.lower()}”" in text
    assert "Clear search" in text
    assert f"Select all {n} matching device{'s' if n != 1 else ''}" in text
    assert f'data-ticks-total="{n}"' in html

    model = a_model(mine + others)
    html = section(htmx, profile, q=model.lower())
    expected = [d.serial_number for d in mine if matches(d, model)]
    assert ROW.findall(html) == expected
    assert not {d.serial_number for d in others} & set(ROW.findall(html))  # not associated: never listed
    # The field is labelled, keeps what was searched, and the count line is announced when it changes.
    assert '<label for="profile-devices-q">Search devices</label>' in html
    assert f'id="profile-devices-q" name="q" type="search" value="{model.lower()}"' in html
    assert 'placeholder="Serial number, model or description"' in html
    assert re.search(r'<p class="muted"><span data-announce="">\d+ of 12 devices', html)

    everything = section(htmx, profile)
    assert len(ROW.findall(everything)) == 12 and "12 devices associated with this profile" in words(everything)
    assert "Select all 12 associated devices" in words(everything) and "Clear search" not in everything


def test_the_search_is_in_the_page_url_and_its_pager(htmx, paris, run_jobs, monkeypatch):
    server, profile, devices, model, expected = searched_fleet(htmx, run_jobs, paris, at_least=3)
    monkeypatch.setattr(queries, "PROFILE_PAGE", 2)

    # Without JavaScript: the section's own page, bookmarkable, its search a plain GET form to itself.
    htmx.environ_base.pop("HTTP_HX_REQUEST")
    page = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model})
    html = page.get_data(as_text=True)
    htmx.environ_base["HTTP_HX_REQUEST"] = "true"
    assert page.status_code == 200 and "<h1>" in html
    assert re.search(rf'<form id="profile-devices-search"[^>]*method="get" action="/profiles/{profile.id}/devices"', html)
    assert '<button type="submit">Search</button>' in html
    assert ROW.findall(html) == expected[:2]
    q_arg = re.escape(model.replace(" ", "+"))
    assert re.search(rf'rel="next" href="/profiles/{profile.id}/devices\?page=2&amp;q={q_arg}"', html)

    second = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model, "page": 2}).get_data(as_text=True)
    assert ROW.findall(second) == expected[2:4]
    assert re.search(rf'rel="prev" href="/profiles/{profile.id}/devices\?q={q_arg}"', second)
    # The refresh after a request (assignmentsChanged…) sends the search box's q along, and the page it shows.
    assert re.search(r'<section class="card" id="profile-devices" hx-get="[^"]*" '
                     r'hx-include="#profile-devices-q, #profile-devices-page"', second)
    assert '<input type="hidden" id="profile-devices-page" name="page" value="2">' in second
    assert 'id="profile-devices-page"' not in htmx.get(f"/profiles/{profile.id}/devices",
                                                        query_string={"q": model}).get_data(as_text=True)


def test_a_search_matching_nothing_is_not_a_profile_without_devices(htmx, paris, run_jobs):
    server, profile = paris(devices=3)
    empty = words(section(htmx, profile, q="C02"))
    assert "No devices yet" in empty and "No associated device matches" not in empty
    assert "Search devices" not in empty  # nothing to search
    # Nor does the section's refresh send the search box: htmx reports a selector matching nothing as an error.
    assert "hx-include=" not in re.search(r'<section class="card" id="profile-devices"[^>]*>', section(htmx, profile)
                                          ).group(0)

    associate(htmx, run_jobs, profile, devices_of(server.id).values())
    html = section(htmx, profile, q="NO-SUCH-DEVICE")
    assert 'hx-include="#profile-devices-q' in re.search(r'<section class="card" id="profile-devices"[^>]*>', html).group(0)
    text = words(html)
    assert "No associated device matches “NO-SUCH-DEVICE”" in text and "Clear search" in text
    assert "No devices yet" not in text and ROW.findall(html) == []
    assert "Remove Devices" in text and "Search devices" in text  # still there: the profile has devices


def test_select_all_with_a_search_removes_only_the_matching_devices(htmx, apple, paris, run_jobs):
    server, profile, devices, model, matching = searched_fleet(htmx, run_jobs, paris)
    kept = sorted(d.serial_number for d in devices if not matches(d, model))

    # The Remove Devices form of the searched list carries the search with Select all.
    html = section(htmx, profile, q=model)
    assert re.search(rf'<form id="profile-devices-form"[^>]*>\s*<input type="hidden" name="q" value="{re.escape(model)}">',
                     html)
    url = f"/profiles/{profile.id}/devices/remove"
    confirm = htmx.get(url, query_string={"all": "1", "q": model})
    text = words(confirm.get_data(as_text=True))
    n = len(matching)
    assert confirm.status_code == 200 and f"Remove “Sales” from {n} device{'s' if n != 1 else ''} at Apple?" in text
    assert f"Associated devices that match “{model}”: {', '.join(matching[:10])}" in text
    assert kept[0] not in text
    assert f'<input type="hidden" name="q" value="{model}">' in confirm.get_data(as_text=True)

    assert htmx.post(url, data={"all": "1", "q": model}).status_code == 204
    batch = latest_batch()
    assert (batch.action, batch.total) == ("remove", n) and sorted(tasks_of(batch.id)) == matching
    assert run_jobs() == []
    after = devices_of(server.id)
    assert all(after[s].profile_id is None for s in matching)
    assert all(after[s].profile_id == profile.id for s in kept)
    assert apple.state.device(matching[0])["profile_status"] == "removed"
    assert apple.state.device(kept[0])["profile_status"] != "removed"
    assert f"{len(kept)} devices associated with this profile" in words(section(htmx, profile))


def test_ticked_devices_outside_the_search_go_only_when_ticked(htmx, apple, paris, run_jobs):
    server, profile, devices, model, matching = searched_fleet(htmx, run_jobs, paris)
    outside = [d for d in devices if not matches(d, model)]
    ticked_outside = outside[0]

    # "· N ticked" and the live counter count the matching devices plus the one ticked outside the search.
    html = section(htmx, profile, q=model, all="1", device=str(ticked_outside.id))
    assert f'data-ticks-total="{len(matching)}"' in html and 'data-ticks-outside="1"' in html
    assert f"· {len(matching) + 1} ticked" in words(html)
    assert f'<input type="hidden" name="device" value="{ticked_outside.id}">' in html  # rides along

    url = f"/profiles/{profile.id}/devices/remove"
    confirm = words(htmx.get(url, query_string={"all": "1", "q": model, "device": str(ticked_outside.id)})
                    .get_data(as_text=True))
    assert f"from {len(matching) + 1} devices" in confirm and f"match “{model}” or were ticked" in confirm

    # Ticked without Select all: those ticked only, the search left aside (a matching device not ticked stays).
    one = next(d for d in devices if matches(d, model))
    assert htmx.post(url, data={"device": [str(ticked_outside.id), str(one.id)], "q": model}).status_code == 204
    assert sorted(tasks_of(latest_batch().id)) == sorted([ticked_outside.serial_number, one.serial_number])
    assert run_jobs() == []

    # Select all with the search and a device ticked outside it: the matching ones and that one, no other.
    second_outside = outside[1]
    assert htmx.post(url, data={"all": "1", "q": model, "device": str(second_outside.id)}).status_code == 204
    assert sorted(tasks_of(latest_batch().id)) == sorted([s for s in matching if s != one.serial_number]
                                                         + [second_outside.serial_number])
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == \
        {d.serial_number for d in outside[2:]}


def test_the_profile_pages_address_keeps_the_search_for_a_reload_or_a_bookmark(htmx, paris, run_jobs):
    """Searching on the profile page left its address at /profiles/<id>: Reload or Back lost the search."""
    server, profile, devices, model, matching = searched_fleet(htmx, run_jobs, paris)
    page_url = f"http://localhost/profiles/{profile.id}"
    searched = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model},
                        headers={"HX-Current-URL": page_url})
    assert searched.headers["HX-Replace-Url"] == f"/profiles/{profile.id}?q={model}"  # replaced: no history entry
    cleared = htmx.get(f"/profiles/{profile.id}/devices", headers={"HX-Current-URL": f"{page_url}?q={model}"})
    assert cleared.headers["HX-Replace-Url"] == f"/profiles/{profile.id}"
    own_page = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model},
                        headers={"HX-Current-URL": f"http://localhost/profiles/{profile.id}/devices"})
    assert "HX-Replace-Url" not in own_page.headers  # the section's own page has its own address already
    # Another page of the list is a step Back returns from (pushed); the section refreshing itself is not.
    paged = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model, "page": "2"},
                     headers={"HX-Current-URL": f"{page_url}?q={model}"})
    assert paged.headers["HX-Push-Url"] == f"/profiles/{profile.id}?q={model}&page=2" and "HX-Replace-Url" not in paged.headers
    refreshed = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model, "page": "2"},
                         headers={"HX-Current-URL": f"{page_url}?q={model}&page=2"})
    assert refreshed.headers["HX-Replace-Url"] == f"/profiles/{profile.id}?q={model}&page=2"
    first = htmx.get(f"/profiles/{profile.id}/devices", query_string={"q": model},
                     headers={"HX-Current-URL": f"{page_url}?q={model}&page=2"})
    assert first.headers["HX-Push-Url"] == f"/profiles/{profile.id}?q={model}"  # « First page: a step too

    reloaded = htmx.get(f"/profiles/{profile.id}", query_string={"q": model}).get_data(as_text=True)
    assert sorted(ROW.findall(reloaded)) == matching
    assert f'value="{model}"' in reloaded  # the box shows the search it keeps
    assert sorted(ROW.findall(htmx.get(f"/profiles/{profile.id}").get_data(as_text=True))) == sorted(
        d.serial_number for d in devices)
