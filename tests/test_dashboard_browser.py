"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by Playwright) against
a real server and the virtual printer: sign in (a wrong key first), see a printed order, reprint
it and see it print, look at its ticket, find it by order number; an action without the CSRF
token is refused; the page loads nothing that the guard would count as a probe; untrusted text
stays text; the phone layout fits a phone. The screenshots go to a temporary folder: the
README's pictures in docs/images are refreshed only on purpose, by ``python tools/screenshots.py``
(which sets ``SPOONPRINT_SCREENSHOTS``), so a checkout stays clean after testing.

Needs ``apt-get install -y --no-install-recommends chromium`` and ``pip install playwright``
(never ``playwright install``: the browser is Debian's); skipped without them.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from spoonprint.domain.receipt import EXAMPLE
from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import Server, ServerFactory, free_port

pytestmark = pytest.mark.e2e

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = Path("/usr/bin/chromium")
README_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"
#: The folder to save the screenshots in instead of a temporary one (tools/screenshots.py).
SCREENSHOTS_ENV = "SPOONPRINT_SCREENSHOTS"


def _pictures() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(README_IMAGES.glob("*.png"))}


#: The README's pictures as the checkout had them before these tests ran.
BEFORE = _pictures()
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="needs Playwright: pip install playwright (never 'playwright install')",
)
if not CHROMIUM.exists():
    pytest.skip(
        "needs Debian's Chromium: apt-get install -y --no-install-recommends chromium",
        allow_module_level=True,
    )
expect = sync_api.expect
PNG = b"\x89PNG\r\n\x1a\n"
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # A plain launch runs on a new temporary profile (user-data-dir) of its own every time.
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def desktop(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    yield context
    context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-GB",
    )
    yield context
    context.close()


def two_printers(make_server: ServerFactory, printer: VirtualPrinterThread) -> Server:
    """The kitchen printer works; nothing answers at the bar printer's address."""
    return make_server(
        [
            {"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"},
            {"name": "bar", "uri": f"tcp://127.0.0.1:{free_port()}"},
        ]
    )


def sign_in(page: Page, server: Server, key: str | None = None) -> None:
    page.goto(f"{server.url}/dashboard")
    page.fill("#key", key or server.key)
    page.click("button[type=submit]")


def security_events(server: Server) -> list[dict[str, Any]]:
    path = server.data_dir / "logs" / "security.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def job_row(page: Page, table: str, job_id: int) -> Any:
    return page.locator(f"#{table} tr[data-job-id='{job_id}']")


def test_sign_in_see_a_printed_order_reprint_it_and_see_it_print(
    make_server: ServerFactory,
    printer: VirtualPrinterThread,
    desktop: BrowserContext,
    screenshots: Path,
) -> None:
    server = two_printers(make_server, printer)
    api = server.client()
    job_id = api.post("/print", json={"order_id": "A-1023", "receipt": EXAMPLE}).json()["job_id"]
    server.wait_for_state(job_id, "printed")
    api.post("/print", json={"text": "2x Lemon tea\nless ice", "printer": "bar"})
    page = desktop.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    sign_in(page, server, "sp_not_the_key")
    expect(page.locator(".notice.error")).to_have_text("That key is not right.")
    sign_in(page, server)
    expect(page.locator("#connection")).to_have_text("live")
    session = next(c for c in desktop.cookies() if c["name"] == "spoonprint_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert "spoonprint_session" not in page.evaluate("document.cookie")

    kitchen = page.locator("[data-printer='kitchen']")
    expect(kitchen.locator(".printer-name .badge")).to_have_text("OK")
    expect(page.locator("[data-printer='bar'] .advice")).to_contain_text("unreachable")
    row = job_row(page, "recent-jobs", job_id)
    expect(row.locator(".order")).to_have_text("A-1023")
    expect(row.locator(".state .badge")).to_have_text("printed")
    expect(page.locator("#queue-oldest")).to_contain_text("on bar")

    row.get_by_role("button", name="Reprint").click()
    expect(page.locator("#toast")).to_contain_text(f"Job {job_id} prints again as job")
    reprint = job_row(page, "recent-jobs", job_id + 2)  # the bar order is job_id + 1
    expect(reprint.locator(".state .badge")).to_have_text("printed")  # live, no reload
    expect(reprint.locator(".order")).to_contain_text("REPRINT")
    tickets = printer.wait_for_tickets(2, timeout=10)
    assert "ordered" in tickets[1].text and "Order: A-1023" in tickets[1].text

    reprint.click()  # the order's details and the picture of its ticket
    dialog = page.locator("#job-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#job-events")).to_contain_text(f"reprint of job {job_id}")
    preview = page.locator("#job-preview")
    expect(preview).to_have_js_property("complete", True)
    assert preview.evaluate("img => img.naturalWidth") == 576
    page.screenshot(path=str(screenshots / "dashboard-ticket.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    page.fill("#search-q", "a-1023")
    page.click("#search button[type=submit]")
    expect(page.locator("#search-status")).to_have_text("2 orders matching “a-1023”.")
    expect(page.locator("#search-results tbody tr")).to_have_count(2)
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    assert (screenshots / "dashboard.png").read_bytes().startswith(PNG)

    # The session cookie alone does nothing: an action needs the page's CSRF token too.
    status = page.evaluate(
        "id => fetch(`/dashboard/api/jobs/${id}/reprint`, {method: 'POST'}).then(r => r.status)",
        job_id,
    )
    assert status == 403 and len(printer.tickets) == 2

    # The whole visit cost one strike: the wrong key. No favicon or other guess was requested.
    strikes = [e for e in security_events(server) if e["event"] == "strike"]
    assert [(e["path"], e["detail"]) for e in strikes] == [
        ("/dashboard/sign-in", "wrong API key (dashboard sign-in)")
    ]
    page.click("form.sign-out button")
    expect(page.locator("#key")).to_be_visible()


def test_untrusted_text_is_shown_as_text(
    server: Server, printer: VirtualPrinterThread, desktop: BrowserContext
) -> None:
    hostile = "<img src=x id=pwned onerror=alert(1)>"
    job_id = server.client().post("/print", json={"text": hostile, "order_id": hostile}).json()
    server.wait_for_state(job_id["job_id"], "printed")
    page = desktop.new_page()
    page.goto(f"{server.url}/{hostile}")  # a "probe": 404 and a security event with this path
    sign_in(page, server)
    row = job_row(page, "recent-jobs", job_id["job_id"])
    expect(row.locator(".order")).to_have_text(hostile)
    expect(page.locator("#security-events")).to_contain_text("id=pwned")
    assert page.locator("#pwned").count() == 0


def test_phone_layout_fits_the_screen(
    make_server: ServerFactory,
    printer: VirtualPrinterThread,
    phone: BrowserContext,
    screenshots: Path,
) -> None:
    server = two_printers(make_server, printer)
    api = server.client()
    for number, text in enumerate(["1x Wonton noodles", "3x Pineapple bun", "1x Milk tea"]):
        job = api.post("/print", json={"text": text, "order_id": f"T-{number + 20}"}).json()
        server.wait_for_state(job["job_id"], "printed")
    api.post("/print", json={"text": "2x Lemon tea", "order_id": "B-4", "printer": "bar"})
    page = phone.new_page()
    sign_in(page, server)
    expect(page.locator("#connection")).to_have_text("live")
    expect(page.locator("[data-printer='bar'] .advice")).to_contain_text("unreachable")
    expect(page.locator("#recent-jobs tbody tr")).to_have_count(4)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"
    # Jobs are cards on a phone: the table header is hidden, the buttons are finger-sized.
    expect(page.locator("#recent-jobs thead")).to_be_hidden()
    reprint = page.locator("#recent-jobs").get_by_role("button", name="Reprint").first
    assert reprint.bounding_box()["height"] >= 36
    page.screenshot(path=str(screenshots / "dashboard-phone.png"), full_page=True)
    assert (screenshots / "dashboard-phone.png").read_bytes().startswith(PNG)
    assert re.match(r"^⚠ bar · spoonprint$", page.title())


@pytest.mark.skipif(bool(os.environ.get(SCREENSHOTS_ENV)), reason="refreshing the pictures")
def test_the_readme_pictures_are_left_alone() -> None:
    # Last in this file: the tests above took their screenshots without touching docs/images.
    assert _pictures() == BEFORE
