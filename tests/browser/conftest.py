"""Browser test fixtures: Debian's Chromium driven by Playwright, against a broker on a thread.

The tests skip (module level, in test_dashboard.py) where Playwright or Chromium is missing, and
on the uvloop pass: the page does not depend on the broker's event loop, and one pass bounds CI time.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker import EdgeBroker
from broker.testing.threaded import ThreadedBroker
from tests.helpers import WAIT, ephemeral_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page

CHROMIUM = Path(os.environ.get("EDGEMQ_CHROMIUM", "/usr/bin/chromium"))


def skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if os.environ.get("EDGEMQ_TEST_LOOP") == "uvloop":
        return "browser tests run in the default pytest pass only (the page does not depend on the loop)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[browser]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set EDGEMQ_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, headless, shared by a module's tests (each gets a context of its own)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def edgemq() -> Iterator[ThreadedBroker]:
    """A fresh broker on free ports, on a background thread (Playwright's sync API owns this one)."""
    with EdgeBroker.run_in_thread(ephemeral_settings()) as running:
        yield running


class Console:
    """Errors the page logged to the console or threw."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def message(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def exception(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")


@contextlib.contextmanager
def open_page(
    browser: Browser,
    username: str,
    password: str,
    console: Console | None = None,
    viewport: tuple[int, int] = (1280, 860),
) -> Iterator[Page]:
    """A page in a fresh browser context holding these Basic credentials; closed on exit."""
    width, height = viewport
    context = browser.new_context(
        http_credentials={"username": username, "password": password}, viewport={"width": width, "height": height}
    )
    try:
        page = context.new_page()
        page.set_default_timeout(5_000)
        if console is not None:
            page.on("console", console.message)
            page.on("pageerror", console.exception)
        yield page
    finally:
        context.close()


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, edgemq: ThreadedBroker, console: Console) -> Iterator[Page]:
    """A page with the right credentials for ``edgemq``, watched for console errors."""
    with open_page(browser, *edgemq.admin_auth, console=console) as opened:
        yield opened


def api(broker: ThreadedBroker) -> httpx.Client:
    return httpx.Client(base_url=broker.api_url + "/v4", auth=broker.admin_auth, timeout=WAIT)


def wait_for_poll(page: Page) -> None:
    """Wait until the page has completed one more poll of the API than it had now."""
    from playwright.sync_api import expect

    body = page.locator("body")
    expect(body).not_to_have_attribute("data-polls", body.get_attribute("data-polls") or "")


@contextlib.contextmanager
def mqtt_client(broker: ThreadedBroker, client_id: str) -> Iterator[paho.Client]:
    """A connected paho client (no automatic reconnect: a kick must stick), disconnected on exit."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, reconnect_on_failure=False)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect(broker.mqtt_host, broker.mqtt_port)
    client.loop_start()
    try:
        assert connected.wait(WAIT)
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tests write their screenshots."""
    return tmp_path_factory.mktemp("dashboard-screenshots")
