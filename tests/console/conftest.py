"""Browser fixtures: Debian's Chromium driven by Playwright against a real Keel server."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from keel.settings import Settings
from tests.clients.live import ROOT, require, server_env
from tests.conftest import IN_CI
from tests.servers import Server, run_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "clients" / "typescript" / "node_modules" / "axe-core" / "axe.min.js"
PASSWORD = "a long enough passphrase"
PHONE = {"width": 390, "height": 844}
# Generous waits: CI shares two cores, and a live update can take seconds there. Assertions
# still wait for the state itself, never for a duration.
expect.set_options(timeout=20_000)
DESKTOP = {"width": 1200, "height": 900}


@pytest.fixture
def browser(keel: Server) -> Iterator[Browser]:
    # Per test, and only after the (async) database fixtures: Playwright's sync API marks its
    # own event loop as running in this thread while it is open.
    if not CHROMIUM.exists():
        message = "chromium is not installed (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def keel_env(settings: Settings) -> dict[str, str]:
    # A 1 s heartbeat: a revoked session's open WebSocket closes within a second.
    return {**os.environ, **server_env(settings), "KEEL_WS_HEARTBEAT_SECONDS": "1"}


@pytest.fixture
def keel(keel_env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    with run_server(keel_env, log_dir=tmp_path) as server:
        yield server


@dataclass
class Console:
    """One browser tab on the console, recording CSP violations and script errors."""

    page: Page
    server: Server
    problems: list[str] = field(default_factory=list)

    def open(self) -> None:
        self.page.goto(f"{self.server.url}/console")

    def sign_in(self, email: str, password: str = PASSWORD, totp: str | None = None) -> None:
        self.open()
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        if totp:
            self.page.get_by_label("Authenticator code").fill(totp)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.get_by_role("heading", name="Projects", level=1).wait_for()

    def go(self, screen: str) -> None:
        self.page.get_by_role("navigation", name="Main").get_by_role("link", name=screen).click()
        self.page.get_by_role("heading", name=screen, level=1).wait_for()

    def wait_live(self) -> None:
        self.page.locator("#live-status[data-state=live]").wait_for()

    def alert(self) -> str:
        box = self.page.locator(".message:not([hidden])")
        box.wait_for()
        return box.inner_text()


@pytest.fixture
def open_console(browser: Browser, keel: Server) -> Iterator[object]:
    contexts: list[BrowserContext] = []
    consoles: list[Console] = []

    def factory(viewport: dict[str, int] | None = None) -> Console:
        context = browser.new_context(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
        contexts.append(context)
        page = context.new_page()
        console = Console(page=page, server=keel)
        page.on(
            "console",
            lambda m: (
                console.problems.append(m.text)
                if "Content Security Policy" in m.text or m.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda e: console.problems.append(f"page error: {e}"))
        consoles.append(console)
        return console

    yield factory
    for context in contexts:
        context.close()
    problems = [p for c in consoles for p in c.problems if not _expected(p)]
    assert not problems, f"CSP violations or script errors in the console: {problems}"


def _expected(problem: str) -> bool:
    # Error answers the tests provoke on purpose show up as failed resource loads.
    return "Failed to load resource" in problem


def register(server: Server, *, name: str = "Ada Lovelace") -> str:
    email = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:8]}@example.com"
    response = httpx.post(
        f"{server.url}/api/v1/auth/register",
        json={"email": email, "password": PASSWORD, "name": name},
    )
    assert response.status_code == 201, response.text
    return email


def axe_source() -> str:
    require(AXE, how="cd clients/typescript && npm ci (axe-core is a devDependency)")
    return AXE.read_text()


def axe_violations(page: Page) -> list[dict[str, object]]:
    """The serious and critical axe-core violations of the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # evaluate() runs outside the page's CSP, so the strict policy stays in force.
        page.evaluate(axe_source())
    result = page.evaluate(
        "async () => JSON.stringify((await axe.run(document, "
        "{resultTypes: ['violations']})).violations)"
    )
    violations: list[dict[str, object]] = json.loads(result)
    return [v for v in violations if v.get("impact") in ("serious", "critical")]
