"""The dashboard under awkward input and failures: odd client ids, silent requests, big payloads."""

from __future__ import annotations

import threading

import pytest

from broker.testing.threaded import ThreadedBroker
from tests.browser.conftest import api, mqtt_client, skip_reason, wait_for_poll
from tests.helpers import WAIT

if (_reason := skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Dialog, Page, Route, expect  # after the skip: Playwright may be missing

pytestmark = pytest.mark.timeout(60)


def test_kick_of_an_id_ending_in_a_slash_kicks_that_client(page: Page, edgemq: ThreadedBroker) -> None:
    """Kick on client ``a/`` disconnects ``a/`` and leaves client ``a`` connected."""
    gone = threading.Event()
    with mqtt_client(edgemq, "a"), mqtt_client(edgemq, "a/") as slashed, api(edgemq) as http:
        slashed.on_disconnect = lambda *_: gone.set()
        page.goto(edgemq.dashboard_url + "#clients")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Kick a/").click()
        assert gone.wait(WAIT), "a/ was not disconnected"
        assert http.get("/clients/a").json()["data"][0]["conn_state"] == "connected"


def test_kick_of_a_dot_dot_id_explains_instead_of_sending(page: Page, edgemq: ThreadedBroker) -> None:
    """Kick on client ``..`` sends no request (the browser would resolve it) and says why."""
    deletes: list[str] = []
    page.on("request", lambda request: deletes.append(request.url) if request.method == "DELETE" else None)
    with mqtt_client(edgemq, ".."), api(edgemq) as http:
        page.goto(edgemq.dashboard_url + "#clients")
        page.get_by_role("button", name="Kick ..").click()
        expect(page.locator("#action-error")).to_contain_text("cannot be sent from a browser")
        assert deletes == []
        [client] = http.get("/clients", params={"clientid": ".."}).json()["data"]  # httpx would resolve /clients/..
        assert (client["client_id"], client["conn_state"]) == ("..", "connected")


def test_unanswered_request_is_an_error_and_polling_goes_on(page: Page, edgemq: ThreadedBroker) -> None:
    """A /metrics request that never answers fails after 8 s with a message, and the next poll runs."""
    held: list[Route] = []
    page.route("**/api/v4/metrics", lambda route: held.append(route))  # never answered while routed
    page.goto(edgemq.dashboard_url)
    expect(page.locator("#error")).to_contain_text("no answer within 8 s", timeout=15_000)
    page.unroute("**/api/v4/metrics")
    expect(page.locator("#fig-in")).to_have_text("0", timeout=10_000)
    expect(page.locator("#error")).to_be_hidden()


def test_action_error_outlives_the_next_poll(page: Page, edgemq: ThreadedBroker) -> None:
    """Kicking a client that has left shows the 404 until dismissed, not only until the next poll."""
    with api(edgemq) as http:

        def leave_then_confirm(dialog: Dialog) -> None:
            assert http.delete("/clients/dash-leaver").json() == {"code": 0}  # gone before the page's DELETE
            dialog.accept()

        with mqtt_client(edgemq, "dash-leaver"):
            page.goto(edgemq.dashboard_url + "#clients")
            page.once("dialog", leave_then_confirm)
            page.get_by_role("button", name="Kick dash-leaver").click()
            alert = page.locator("#action-error")
            expect(alert).to_contain_text("404")
            wait_for_poll(page)
            wait_for_poll(page)
            expect(alert).to_contain_text("404")
            page.get_by_role("button", name="Dismiss").click()
            expect(alert).to_be_hidden()


def test_failed_restart_does_not_say_requested(page: Page, edgemq: ThreadedBroker) -> None:
    """When the restart request fails, the page shows the error and not "Restart requested…"."""
    page.route("**/api/v4/ctrl/restart", lambda route: route.fulfill(status=500, json={"code": 113, "message": "no"}))
    page.goto(edgemq.dashboard_url + "#configuration")
    expect(page.locator("#status")).to_contain_text("edgemq")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Restart the MQTT side…").click()
    expect(page.locator("#action-error")).to_contain_text("500")
    expect(page.locator("#status")).not_to_contain_text("Restart requested")


def test_focus_stays_on_a_kick_button_across_polls(page: Page, edgemq: ThreadedBroker) -> None:
    """A focused Kick button still has the keyboard focus after the table is polled again."""
    with mqtt_client(edgemq, "dash-focus"):
        page.goto(edgemq.dashboard_url + "#clients")
        page.get_by_role("button", name="Kick dash-focus").focus()
        wait_for_poll(page)
        wait_for_poll(page)
        assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Kick dash-focus"


def test_large_retained_payload_shows_its_first_64_kb(page: Page, edgemq: ThreadedBroker) -> None:
    """Viewing a 1 MB retained payload renders only its first 64 KB, with a note saying so (text and hex)."""
    with mqtt_client(edgemq, "dash-big") as client:
        client.publish("dash/big", b"x" * 1_000_000, qos=1, retain=True).wait_for_publish(WAIT)
    page.goto(edgemq.dashboard_url + "#retained")
    page.get_by_role("button", name="View dash/big").click()
    expect(page.locator("#payload-note")).to_have_text("Showing the first 64 KB of 1,000,000 bytes.")
    assert page.evaluate("document.getElementById('payload-text').textContent.length") == 64 * 1024
    page.get_by_label("hex").check()
    expect(page.locator("#payload-text")).to_contain_text("0000fff0  78 78")
    expect(page.locator("#payload-text")).not_to_contain_text("00010000")


def test_topic_tree_is_loaded_on_open_and_refresh_only(page: Page, edgemq: ThreadedBroker) -> None:
    """The topic tree is asked for when its panel opens and on Refresh, not on every poll."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url) if "/topic-tree" in request.url else None)
    with mqtt_client(edgemq, "dash-tree") as subscriber:
        subscriber.subscribe("dash/tree/#", qos=1)
        edgemq.wait_for_subscription("dash/tree/#", "dash-tree")
        page.goto(edgemq.dashboard_url + "#topics")
        expect(page.locator("#topic-tree")).to_contain_text("dash-tree")
        wait_for_poll(page)
        wait_for_poll(page)
        assert len(asked) == 1
        with page.expect_request("**/api/v4/topic-tree"):
            page.get_by_role("button", name="Refresh").click()
        expect(page.locator("#topic-count")).to_have_text("3 topic levels.")
        assert len(asked) == 2


def test_topic_tree_draws_at_most_2000_nodes(page: Page, edgemq: ThreadedBroker) -> None:
    """A tree of 2001 topic levels draws its first 2000 and says so."""
    with mqtt_client(edgemq, "dash-wide") as subscriber:
        subscriber.subscribe([(f"wide{n}", 0) for n in range(2001)])
        edgemq.wait_for_subscription("wide2000", "dash-wide")
        page.goto(edgemq.dashboard_url + "#topics")
        expect(page.locator("#topic-count")).to_have_text(
            "Showing the first 2,000 of 2,001 topic levels, level by level."
        )
        expect(page.locator("#topic-tree li")).to_have_count(2000)


def test_hostile_client_id_shows_as_text(page: Page, edgemq: ThreadedBroker) -> None:
    """A client id written as HTML shows as text: no element made from it and no dialog."""
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    hostile = "<img src=x onerror=alert(1)>"
    with mqtt_client(edgemq, hostile):
        page.goto(edgemq.dashboard_url + "#clients")
        expect(page.get_by_role("cell", name=hostile, exact=True)).to_be_visible()
        wait_for_poll(page)
    expect(page.locator("#clients-table img")).to_have_count(0)
    assert dialogs == []
