"""Deliveries end to end: a real receiver on loopback, signatures checked with the
Standard Webhooks reference library, retries with the same webhook-id."""

from __future__ import annotations

import json

import httpx
from standardwebhooks.webhooks import Webhook

from tests.conftest import RegisteredUser, register_user
from tests.webhooks.conftest import API, eventually
from tests.webhooks.receiver import Receiver


async def _endpoint(
    client: httpx.AsyncClient, user: RegisteredUser, url: str, events: list[str] | None = None
) -> dict[str, object]:
    response = await client.post(
        API,
        json={"url": url, "events": events or ["project.created", "project.updated"]},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def _project(client: httpx.AsyncClient, user: RegisteredUser, name: str) -> str:
    response = await client.post("/api/v1/projects", json={"name": name}, headers=user.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_delivery_verifies_with_the_reference_library(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    user = await register_user(client)
    endpoint = await _endpoint(client, user, receiver.url)
    secret = str(endpoint["secret"])
    assert secret.startswith("whsec_")
    project_id = await _project(client, user, "Signed delivery")

    await eventually(lambda: receiver.count() >= 1)
    received = receiver.requests[0]
    payload = Webhook(secret).verify(received.body, received.headers)
    assert payload["type"] == "project.created"
    assert payload["data"]["id"] == project_id
    assert payload["timestamp"].endswith("Z")
    assert received.headers["webhook-id"].startswith("msg_")


async def test_a_receiver_failing_twice_gets_the_same_id_three_times(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_first = 2
    user = await register_user(client)
    endpoint = await _endpoint(client, user, receiver.url)
    await _project(client, user, "Flaky receiver")

    async def delivered() -> bool:
        log = await client.get(f"{API}/{endpoint['id']}/deliveries", headers=user.headers)
        return bool(log.json()["data"]) and log.json()["data"][0]["status"] == "succeeded"

    await eventually(delivered)
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    assert receiver.count() == 3
    assert len(ids) == 1
    log = (await client.get(f"{API}/{endpoint['id']}/deliveries", headers=user.headers)).json()
    (delivery,) = log["data"]
    assert delivery["id"] == ids.pop()
    assert [a["statusCode"] for a in delivery["attempts"]] == [500, 500, 204]
    assert delivery["nextAttemptAt"] is None
    assert delivery["eventType"] == "project.created"


async def test_a_receiver_that_never_succeeds_ends_failed_after_the_schedule(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail_first = 1000
    user = await register_user(client)
    endpoint = await _endpoint(client, user, receiver.url)
    await _project(client, user, "Dead receiver")

    async def failed() -> bool:
        log = await client.get(f"{API}/{endpoint['id']}/deliveries", headers=user.headers)
        return bool(log.json()["data"]) and log.json()["data"][0]["status"] == "failed"

    await eventually(failed)
    # One try and then one retry per entry of the schedule (three in these tests).
    assert receiver.count() == 4

    # Redelivery sends the same message again, under the same id.
    receiver.fail_first = 0
    delivery = (
        await client.get(f"{API}/{endpoint['id']}/deliveries", headers=user.headers)
    ).json()["data"][0]
    again = await client.post(
        f"{API}/{endpoint['id']}/deliveries/{delivery['id']}/redeliver", headers=user.headers
    )
    assert again.status_code == 202
    await eventually(lambda: receiver.count() >= 5)
    assert receiver.requests[-1].headers["webhook-id"] == delivery["id"]
    assert json.loads(receiver.requests[-1].body) == json.loads(receiver.requests[0].body)


async def test_events_not_subscribed_and_other_users_projects_are_not_sent(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    alice, bob = await register_user(client), await register_user(client)
    await _endpoint(client, alice, receiver.url, events=["project.deleted"])
    watched = await _project(client, alice, "Watched")
    await _project(client, bob, "Not alices")
    deleted = await client.delete(f"/api/v1/projects/{watched}", headers=alice.headers)
    assert deleted.status_code == 204
    await eventually(lambda: receiver.count() >= 1)
    types = [json.loads(r.body)["type"] for r in receiver.requests]
    assert types == ["project.deleted"]
