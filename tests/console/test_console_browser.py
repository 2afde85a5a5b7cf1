"""The console in a real headless Chromium: sign-in with TOTP, live projects, sessions, admin."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import pyotp
from playwright.sync_api import Page, expect

from tests.console.conftest import PASSWORD, PHONE, Console, axe_violations, register
from tests.servers import Server

OpenConsole = Callable[..., Console]


def _project(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(".project", has=page.locator("h3", has_text=name))


def test_sign_in_by_keyboard_and_see_the_envelope_for_wrong_credentials(
    open_console: OpenConsole,
) -> None:
    console = open_console()
    email = register(console.server)
    console.open()
    page = console.page
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(email)
    page.keyboard.press("Tab")
    page.keyboard.type("wrong password here")
    page.keyboard.press("Enter")
    alert = console.alert()
    assert "do not match" in alert
    assert "null" not in alert
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.get_by_role("heading", name="Projects", level=1).wait_for()
    expect(page.get_by_role("heading", name="Projects", level=1)).to_be_focused()


def test_projects_create_edit_delete_and_a_second_page_follows_live(
    open_console: OpenConsole,
) -> None:
    first, second = open_console(), open_console()
    email = register(first.server)
    first.sign_in(email)
    second.sign_in(email)
    first.wait_live()
    second.wait_live()
    page, other = first.page, second.page

    page.get_by_label("Name", exact=True).fill("Apollo Launch")
    page.get_by_label("Description").fill("To the moon")
    page.get_by_role("button", name="Create project").click()
    expect(_project(page, "Apollo Launch")).to_be_visible()
    expect(_project(other, "Apollo Launch")).to_be_visible()  # live, no reload
    expect(other.locator("#announcer")).to_contain_text("was created")

    # The server's validation comes back as the envelope, field by field.
    page.get_by_label("Name", exact=True).fill("Bad name!")
    page.get_by_role("button", name="Create project").click()
    assert "name:" in first.alert()

    _project(page, "Apollo Launch").get_by_role("button", name="Edit").click()
    page.get_by_role("form", name="Edit Apollo Launch").get_by_label("Name").fill("Artemis Launch")
    page.get_by_role("form", name="Edit Apollo Launch").get_by_label("Status").select_option(
        "completed"
    )
    page.get_by_role("button", name="Save").click()
    expect(_project(page, "Artemis Launch")).to_contain_text("completed")
    expect(_project(other, "Artemis Launch")).to_contain_text("completed")
    expect(_project(other, "Apollo Launch")).to_have_count(0)

    page.get_by_label("Name", exact=True).fill("Gemini")
    page.get_by_role("button", name="Create project").click()
    expect(_project(other, "Gemini")).to_be_visible()
    other.get_by_label("Search").fill("artemis")
    expect(other.locator(".project")).to_have_count(1)
    other.get_by_label("Search").fill("")
    expect(other.locator(".project")).to_have_count(2)

    _project(page, "Artemis Launch").get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(_project(page, "Artemis Launch")).to_have_count(0)
    expect(_project(other, "Artemis Launch")).to_have_count(0)
    expect(other.locator(".project")).to_have_count(1)


def test_stale_edit_gets_a_clear_412_message(open_console: OpenConsole) -> None:
    console = open_console()
    email = register(console.server)
    console.sign_in(email)
    page = console.page
    page.get_by_label("Name", exact=True).fill("Stale Check")
    page.get_by_role("button", name="Create project").click()
    project_id = _project(page, "Stale Check").get_attribute("data-id")
    _project(page, "Stale Check").get_by_role("button", name="Edit").click()
    form = page.get_by_role("form", name="Edit Stale Check")
    form.wait_for()
    # Someone else changes it meanwhile (through the API with this tab's own token).
    token = page.evaluate("JSON.parse(sessionStorage.getItem('keel.console.tokens')).accessToken")
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.patch(
        f"{console.server.url}/api/v1/projects/{project_id}",
        json={"description": "changed elsewhere"},
        headers=headers,
    )
    assert response.status_code == 200
    form.get_by_label("Name").fill("Stale Check Two")
    page.get_by_role("button", name="Save").click()
    assert "changed this in the meantime" in console.alert()
    expect(form.get_by_label("Description")).to_have_value("changed elsewhere")


def test_mfa_enrolment_with_qr_then_sign_in_needs_the_code(open_console: OpenConsole) -> None:
    console = open_console()
    email = register(console.server)
    console.sign_in(email)
    page = console.page
    console.go("Security")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert qr.bounding_box()["width"] > 100  # type: ignore[index]
    secret = page.locator(".secret").inner_text()
    totp = pyotp.TOTP(secret)
    page.get_by_label("Code from the app").first.fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    assert "Two-factor authentication is on" in console.alert()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to Keel").wait_for()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert "6-digit code" in console.alert()
    expect(page.get_by_label("Authenticator code")).to_be_focused()
    # The enrolment used this time step's code; the next step's is accepted (clock drift).
    page.get_by_label("Authenticator code").fill(totp.at(time.time() + totp.interval))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Projects", level=1).wait_for()


def test_revoking_a_session_signs_that_tab_out(open_console: OpenConsole) -> None:
    mine, elsewhere = open_console(), open_console()
    email = register(mine.server)
    elsewhere.sign_in(email)
    elsewhere.wait_live()
    mine.sign_in(email)
    mine.go("Sessions")
    page = mine.page
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(3)  # registration, the other tab, this one
    expect(page.get_by_text("this session")).to_have_count(1)
    for remaining in (2, 1):
        page.get_by_role("button", name="Revoke").first.click()
        expect(rows).to_have_count(remaining)
    # The other tab's WebSocket closes with 4401 within a heartbeat; it cannot refresh.
    elsewhere.page.get_by_role("heading", name="Sign in to Keel").wait_for()
    page.get_by_role("button", name="Sign out here").click()
    page.get_by_role("heading", name="Sign in to Keel").wait_for()


def _make_admin(server: Server, settings_env: dict[str, str], email: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "keel", "create-admin", "--email", email, "--password", PASSWORD],
        env=settings_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_admin_manages_users_and_reads_the_audit_log(
    open_console: OpenConsole, keel_env: dict[str, str]
) -> None:
    console = open_console()
    admin = register(console.server, name="Grace Hopper")
    member = register(console.server, name="Linus Member")
    _make_admin(console.server, keel_env, admin)
    console.sign_in(admin)
    page = console.page
    expect(page.get_by_text("(admin)")).to_be_visible()

    console.go("Users")
    row = page.locator(f"tr[data-email='{member}']")
    row.get_by_label(f"Role of {member}").select_option("admin")
    expect(page.locator("#announcer")).to_contain_text(f"Updated {member}")
    expect(row.get_by_label(f"Role of {member}")).to_have_value("admin")
    row.get_by_role("button", name="Deactivate").click()
    expect(row).to_contain_text("deactivated")
    expect(row.get_by_role("button", name="Reactivate")).to_be_visible()

    console.go("Audit log")
    expect(page.locator("tbody")).to_contain_text("auth.login")
    page.get_by_label("Action").fill("no.such.action")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody")).to_contain_text("No entries.")


def test_a_plain_user_has_no_admin_screens(open_console: OpenConsole) -> None:
    console = open_console()
    console.sign_in(register(console.server))
    navigation = console.page.get_by_role("navigation", name="Main")
    expect(navigation.get_by_role("link", name="Projects")).to_be_visible()
    # Webhooks are per user (SPEC §10): every user manages their own endpoints.
    expect(navigation.get_by_role("link", name="Webhooks")).to_be_visible()
    expect(navigation.get_by_role("link", name="Users")).to_have_count(0)
    console.page.goto(f"{console.server.url}/console#/users")
    console.page.reload()
    console.page.get_by_role("heading", name="Projects", level=1).wait_for()


def test_every_screen_passes_axe_on_a_phone_sized_screen(
    open_console: OpenConsole, keel_env: dict[str, str]
) -> None:
    console = open_console(PHONE)
    admin = register(console.server, name="Axe Admin")
    _make_admin(console.server, keel_env, admin)
    console.open()
    console.page.get_by_role("heading", name="Sign in to Keel").wait_for()
    found: dict[str, list[dict[str, object]]] = {"Sign in": axe_violations(console.page)}
    console.sign_in(admin)
    page = console.page
    page.get_by_label("Name", exact=True).fill("Axe Project")
    page.get_by_role("button", name="Create project").click()
    expect(_project(page, "Axe Project")).to_be_visible()
    found["Projects"] = axe_violations(page)
    for screen in ("Webhooks", "Sessions", "Security", "Users", "Audit log"):
        console.go(screen)
        page.locator("main").locator("tbody tr, section, form").first.wait_for()
        found[screen] = axe_violations(page)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{screen} scrolls sideways on a phone ({width}px)"
    bad = {screen: [v["id"] for v in vs] for screen, vs in found.items() if vs}
    assert not bad, f"serious or critical accessibility violations: {bad}"


def test_a_refused_access_token_is_refreshed_once_and_the_console_carries_on(
    open_console: OpenConsole,
) -> None:
    console = open_console()
    console.sign_in(register(console.server))
    page = console.page
    refreshes: list[str] = []
    page.on(
        "request", lambda r: refreshes.append(r.url) if r.url.endswith("/auth/refresh") else None
    )
    # As if the access token had expired while the tab slept.
    page.evaluate(
        "const key = 'keel.console.tokens'; const t = JSON.parse(sessionStorage.getItem(key));"
        "t.accessToken = 'expired'; sessionStorage.setItem(key, JSON.stringify(t));"
    )
    page.reload()
    page.get_by_role("heading", name="Projects", level=1).wait_for()
    console.wait_live()
    page.get_by_label("Name", exact=True).fill("After Refresh")
    page.get_by_role("button", name="Create project").click()
    expect(_project(page, "After Refresh")).to_be_visible()
    assert len(refreshes) == 1


def test_skip_link_moves_focus_to_the_content_without_leaving_the_screen(
    open_console: OpenConsole,
) -> None:
    console = open_console()
    console.sign_in(register(console.server))
    console.go("Sessions")
    page = console.page
    page.get_by_role("link", name="Skip to content").focus()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    expect(page.get_by_role("heading", name="Sessions", level=1)).to_be_visible()
    # Onwards by keyboard: the first control of the screen is reachable with Tab.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('main') !== null")
