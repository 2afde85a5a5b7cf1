"""The webhooks screen in a real Chromium, against a real loopback receiver: an endpoint is
created through the screen, its secret shown once, a project event delivered, signed with
that secret, seen in the delivery log and redelivered."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from keel.webhooks.signing import signature
from tests.console.conftest import PHONE, Console, axe_violations, register
from tests.webhooks import conftest as webhooks
from tests.webhooks.receiver import Receiver

OpenConsole = Callable[..., Console]
# The webhooks tests' own fixtures: the job worker's settings (its store emptied on
# PostgreSQL) and a loopback receiver.
settings = webhooks.settings
receiver = webhooks.receiver


@pytest.fixture
def keel_env(keel_env: dict[str, str]) -> dict[str, str]:
    # The job worker on, short retries, and loopback targets allowed (for the receiver).
    return {**keel_env, **webhooks.fast_env()}


def _endpoint(page: Page, url: str) -> Locator:
    return page.get_by_role("region", name="Webhook endpoints").locator("tr", has_text=url)


def _token(page: Page) -> str:
    token: str = page.evaluate(
        "JSON.parse(sessionStorage.getItem('keel.console.tokens')).accessToken"
    )
    return token


def test_endpoint_secret_once_delivery_and_redelivery_through_the_screen(
    open_console: OpenConsole, receiver: Receiver
) -> None:
    console = open_console()
    console.sign_in(register(console.server))
    console.wait_live()
    console.go("Webhooks")
    page = console.page
    endpoints = page.get_by_role("region", name="Webhook endpoints")
    expect(endpoints).to_contain_text("No endpoints yet")

    # A target Keel never calls comes back as the error envelope, field by field.
    page.get_by_label("URL").fill("http://169.254.169.254/latest/meta-data")
    page.get_by_role("button", name="Add endpoint").click()
    assert "url: Refused" in console.alert()

    # By keyboard: URL, then the three event boxes in order (project.deleted unticked),
    # the description, and Enter.
    page.get_by_label("URL").fill(receiver.url)
    for _ in range(3):
        page.keyboard.press("Tab")
    expect(page.get_by_label("project.deleted")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.type("CI receiver")
    page.keyboard.press("Enter")

    panel = page.get_by_role("region", name="Signing secret")
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading", name="Signing secret")).to_be_focused()
    secret = panel.locator("[data-secret]").inner_text()
    assert secret.startswith("whsec_")
    row = _endpoint(page, receiver.url)
    expect(row).to_contain_text("project.created, project.updated")
    expect(row).to_contain_text("CI receiver")
    expect(row).to_contain_text("active")
    expect(row).not_to_contain_text("project.deleted")

    # Shown once: dismissed, it is gone, and coming back to the screen does not bring it back.
    panel.get_by_role("button", name="I have stored it").click()
    expect(panel).to_have_count(0)
    expect(row.get_by_role("button", name="Deliveries")).to_be_focused()
    console.go("Projects")
    console.go("Webhooks")
    expect(_endpoint(page, receiver.url)).to_be_visible()
    assert secret not in page.content()

    # The log is open before the event: the delivery appears in it without a reload.
    _endpoint(page, receiver.url).get_by_role("button", name="Deliveries").click()
    log = page.get_by_role("region", name="Delivery log")
    expect(log).to_contain_text("No deliveries yet")
    created = httpx.post(
        f"{console.server.url}/api/v1/projects",
        json={"name": "Hooked Project"},
        headers={"Authorization": f"Bearer {_token(page)}"},
    )
    assert created.status_code == 201, created.text
    delivery = log.locator("tbody tr[data-status=succeeded]")
    expect(delivery).to_have_count(1)
    expect(delivery.locator("[data-label=Event]")).to_contain_text("project.created")
    expect(delivery.locator("[data-label=Response]")).to_have_text("204")
    expect(delivery.locator("[data-label=Attempts] summary")).to_have_text("1")

    # What the receiver got is signed with the secret the screen showed.
    [first] = receiver.requests
    message_id = first.headers["webhook-id"]
    assert delivery.get_attribute("data-id") == message_id
    expected = signature(
        secret=secret,
        message_id=message_id,
        timestamp=int(first.headers["webhook-timestamp"]),
        body=first.body,
    )
    assert expected in first.headers["webhook-signature"].split()
    assert "Hooked Project" in first.body

    # Redeliver by keyboard: the same webhook-id again, a second attempt in the log.
    delivery.get_by_role("button", name="Redeliver").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#announcer")).to_contain_text("Redelivery of project.created queued")
    expect(delivery.locator("[data-label=Attempts] summary")).to_have_text("2")
    expect(delivery).to_have_attribute("data-status", "succeeded")
    assert [r.headers["webhook-id"] for r in receiver.requests] == [message_id, message_id]
    delivery.locator("[data-label=Attempts] summary").click()
    expect(delivery.locator(".attempts li")).to_have_count(2)

    # The screen on a phone: nothing scrolls sideways and axe finds nothing serious.
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the webhooks screen scrolls sideways ({width}px)"
    bad = [v["id"] for v in axe_violations(page)]
    assert not bad, f"serious or critical accessibility violations: {bad}"


def test_edit_disable_rotate_and_delete_an_endpoint(
    open_console: OpenConsole, receiver: Receiver
) -> None:
    console = open_console()
    console.sign_in(register(console.server))
    console.go("Webhooks")
    page = console.page
    page.get_by_label("URL").fill(receiver.url)
    page.get_by_role("button", name="Add endpoint").click()
    first_secret = page.locator("[data-secret]").inner_text()
    page.get_by_role("button", name="I have stored it").click()
    row = _endpoint(page, receiver.url)

    row.get_by_role("button", name="Disable").click()
    expect(row).to_contain_text("disabled")
    expect(row.get_by_role("button", name="Enable")).to_be_focused()
    row.get_by_role("button", name="Enable").click()
    expect(row).to_contain_text("active")

    row.get_by_role("button", name="Edit").click()
    form = page.get_by_role("form", name=f"Edit {receiver.url}")
    expect(form.get_by_label("URL")).to_be_focused()
    form.get_by_label("project.created").uncheck()
    form.get_by_label("project.updated").uncheck()
    form.get_by_label("project.deleted").uncheck()
    form.get_by_role("button", name="Save").click()
    assert "events:" in console.alert()  # at least one event type, said by the server
    form.get_by_label("project.deleted").check()
    # Markup in a description is shown as text (the page builds elements, never parses).
    form.get_by_label("Description").fill("Only <b>deletions</b>")
    form.get_by_role("button", name="Save").click()
    expect(form).to_have_count(0)
    expect(row).to_contain_text("project.deleted")
    expect(row).to_contain_text("Only <b>deletions</b>")
    expect(row.locator("b")).to_have_count(0)
    expect(row.get_by_role("button", name="Edit")).to_be_focused()

    # Escape backs out of a confirmation; yes rotates and shows the new secret once.
    row.get_by_role("button", name="Rotate secret").click()
    page.keyboard.press("Escape")
    expect(row.get_by_role("button", name="Rotate secret")).to_be_focused()
    row.get_by_role("button", name="Rotate secret").click()
    page.get_by_role("button", name="Yes, rotate").click()
    rotated = page.locator("[data-secret]").inner_text()
    assert rotated.startswith("whsec_")
    assert rotated != first_secret

    row.get_by_role("button", name="Deliveries").click()
    expect(page.get_by_role("region", name="Delivery log")).to_be_visible()
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Yes, delete").click()
    expect(page.get_by_role("region", name="Webhook endpoints")).to_contain_text("No endpoints yet")
    # Its log and the secret of the deleted endpoint go with it.
    expect(page.get_by_role("region", name="Delivery log")).to_have_count(0)
    expect(page.locator("[data-secret]")).to_have_count(0)
    listed = httpx.get(
        f"{console.server.url}/api/v1/webhooks",
        headers={"Authorization": f"Bearer {_token(page)}"},
    )
    assert listed.json()["data"] == []
