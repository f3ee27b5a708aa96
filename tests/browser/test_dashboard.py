"""The dashboard in a real browser (Playwright driving Chromium) against a real broker."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from broker import EdgeBroker
from broker.testing.threaded import ThreadedBroker
from tests.browser.conftest import Console, api, mqtt_client, open_page, skip_reason, wait_for_poll
from tests.helpers import WAIT, ephemeral_settings

if (_reason := skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect  # after the skip: Playwright may be missing

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def publisher(edgemq: ThreadedBroker) -> Iterator[paho.Client]:
    with mqtt_client(edgemq, "dash-publisher") as client:
        yield client


def test_wrong_password_is_refused(browser: Browser, edgemq: ThreadedBroker) -> None:
    """The page answers 401 to wrong credentials and shows no dashboard."""
    with open_page(browser, "admin", "wrong") as page:
        response = page.goto(edgemq.dashboard_url)
        assert response is not None
        assert response.status == 401
        expect(page.get_by_role("heading", name="Overview")).to_have_count(0)


def test_root_leads_to_the_dashboard(page: Page, edgemq: ThreadedBroker) -> None:
    """``/`` redirects to the dashboard, which loads with the right credentials."""
    page.goto(edgemq.dashboard_url.removesuffix("/dashboard") + "/")
    expect(page).to_have_url(edgemq.dashboard_url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def test_counters_follow_mqtt_traffic(
    page: Page, edgemq: ThreadedBroker, publisher: paho.Client, screenshots: Path
) -> None:
    """Messages published over MQTT show in the page's counters without a reload."""
    page.goto(edgemq.dashboard_url)
    expect(page.locator("#fig-in")).to_have_text("0")
    expect(page.locator("#fig-connected")).to_have_text("1")
    for n in range(3):
        publisher.publish(f"dash/{n}", b"x", qos=1).wait_for_publish(WAIT)
    expect(page.locator("#fig-in")).to_have_text("3")
    expect(page.locator("#fig-drop")).to_have_text("3")  # no subscriber
    page.screenshot(path=screenshots / "overview.png", full_page=True)


def test_kick_disconnects_the_client(page: Page, edgemq: ThreadedBroker, screenshots: Path) -> None:
    """The clients table lists a connected client, and its Kick button (confirmed) disconnects it."""
    gone = threading.Event()
    with mqtt_client(edgemq, "dash-kick") as client:
        client.on_disconnect = lambda *_: gone.set()
        page.goto(edgemq.dashboard_url + "#clients")
        row = page.get_by_role("row").filter(has_text="dash-kick")
        expect(row).to_contain_text("connected")
        page.screenshot(path=screenshots / "clients.png", full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Kick dash-kick").click()
        assert gone.wait(WAIT), "the client was not disconnected"
        expect(row).to_have_count(0)
    with api(edgemq) as http:
        assert http.get("/clients/dash-kick").json()["data"] == []


def test_clients_filter_by_client_id(page: Page, edgemq: ThreadedBroker) -> None:
    """The client id filter narrows the clients table to that client."""
    rows = page.locator("#clients-table tbody tr")
    with mqtt_client(edgemq, "dash-a"), mqtt_client(edgemq, "dash-b"):
        page.goto(edgemq.dashboard_url + "#clients")
        expect(rows).to_have_count(2)
        page.get_by_label("Client id").fill("dash-b")
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(1)
        expect(rows).to_contain_text("dash-b")
        expect(page.locator(".pager[data-for=clients] span")).to_have_text("Page 1 of 1 (1)")


def test_kick_needs_confirmation(page: Page, edgemq: ThreadedBroker) -> None:
    """Dismissing the confirmation sends no DELETE and leaves the client connected."""
    deletes: list[str] = []
    page.on("request", lambda request: deletes.append(request.url) if request.method == "DELETE" else None)
    with mqtt_client(edgemq, "dash-stay"), api(edgemq) as http:
        page.goto(edgemq.dashboard_url + "#clients")
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.get_by_role("button", name="Kick dash-stay").click()
        wait_for_poll(page)
        assert deletes == []
        assert http.get("/clients/dash-stay").json()["data"][0]["conn_state"] == "connected"


def test_restart_button_restarts_the_mqtt_side(page: Page, edgemq: ThreadedBroker) -> None:
    """Restart (confirmed) restarts the MQTT side: connected clients are disconnected."""
    gone = threading.Event()
    with mqtt_client(edgemq, "dash-restarted") as client:
        client.on_disconnect = lambda *_: gone.set()
        page.goto(edgemq.dashboard_url + "#configuration")
        expect(page.locator("#config-text")).to_contain_text("http_server")
        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Restart the MQTT side…").click()
        assert gone.wait(WAIT), "the client was not disconnected by a restart"


def test_retained_payload_shows_as_text_and_hex(page: Page, edgemq: ThreadedBroker, publisher: paho.Client) -> None:
    """A retained message's payload shows as text, and as hex bytes on request."""
    publisher.publish("dash/retained", "héllo".encode(), qos=1, retain=True).wait_for_publish(WAIT)
    page.goto(edgemq.dashboard_url + "#retained")
    page.get_by_role("button", name="View dash/retained").click()
    expect(page.locator("#payload-text")).to_have_text("héllo")
    page.get_by_label("hex").check()
    expect(page.locator("#payload-text")).to_have_text("00000000  68 c3 a9 6c 6c 6f")


def test_retained_message_can_be_deleted(
    page: Page, edgemq: ThreadedBroker, publisher: paho.Client, screenshots: Path
) -> None:
    """The Delete button (confirmed) removes the retained message from the broker and the table."""
    publisher.publish("dash/gone", b"bye", qos=1, retain=True).wait_for_publish(WAIT)
    publisher.publish("dash/kept", b"stay", qos=1, retain=True).wait_for_publish(WAIT)
    page.goto(edgemq.dashboard_url + "#retained")
    expect(page.get_by_role("row").filter(has_text="dash/gone")).to_have_count(1)
    page.screenshot(path=screenshots / "retained.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete dash/gone").click()
    expect(page.get_by_role("row").filter(has_text="dash/gone")).to_have_count(0)
    expect(page.get_by_role("row").filter(has_text="dash/kept")).to_have_count(1)
    with api(edgemq) as http:
        assert http.get("/mqtt/retained/message", params={"topic": "dash/gone"}).status_code == 404
        assert http.get("/mqtt/retained/message", params={"topic": "dash/kept"}).status_code == 200


def test_every_panel_loads_without_console_errors(
    page: Page, edgemq: ThreadedBroker, console: Console, publisher: paho.Client, screenshots: Path
) -> None:
    """Every panel shows its data and the page logs no error to the console."""
    with mqtt_client(edgemq, "dash-subscriber") as subscriber:
        subscriber.subscribe("dash/+/temp", qos=1)
        edgemq.wait_for_subscription("dash/+/temp", "dash-subscriber")
        publisher.publish("dash/r", b"1", retain=True).wait_for_publish(WAIT)
        page.goto(edgemq.dashboard_url)
        expected = {
            "Clients": ("#clients-table", "dash-subscriber"),
            "Subscriptions": ("#subscriptions-table", "dash/+/temp"),
            "Topic tree": ("#topic-tree", "dash-subscriber"),
            "Retained": ("#retained-table", "dash/r"),
            "Bridges & store": ("#store", "off"),
            "Configuration": ("#config-text", "******"),
            "Overview": ("#fig-version", "."),
        }
        for link, (where, text) in expected.items():
            page.get_by_role("link", name=link, exact=True).click()
            expect(page.locator(where)).to_contain_text(text)
            page.screenshot(path=screenshots / f"panel-{where.strip('#')}.png", full_page=True)
        wait_for_poll(page)
    assert console.errors == []
    expect(page.locator("#error")).to_be_hidden()


def test_unreachable_broker_is_shown(browser: Browser) -> None:
    """When the API stops answering, the page says so in its alert box."""
    with contextlib.ExitStack() as running:
        edgemq = running.enter_context(EdgeBroker.run_in_thread(ephemeral_settings()))
        with open_page(browser, *edgemq.admin_auth) as page:
            page.goto(edgemq.dashboard_url)
            expect(page.locator("#fig-in")).to_have_text("0")
            expect(page.get_by_role("alert")).to_be_hidden()
            running.close()  # the broker stops; the page stays open and keeps polling
            expect(page.get_by_role("alert")).to_contain_text("the broker does not answer")


def test_phone_sized_screen_needs_no_sideways_scrolling(
    browser: Browser, edgemq: ThreadedBroker, screenshots: Path
) -> None:
    """On a 390 px wide screen the page fits its width (tables scroll inside their own box)."""
    with open_page(browser, *edgemq.admin_auth, viewport=(390, 844)) as page:
        page.goto(edgemq.dashboard_url + "#clients")
        expect(page.get_by_role("heading", name="Clients")).to_be_visible()
        page.screenshot(path=screenshots / "phone-clients.png", full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
