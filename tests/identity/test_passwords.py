"""Password hashing: Argon2id parameters, rehash on change, bounded pool, common list."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type, extract_parameters
from argon2.exceptions import VerifyMismatchError
from argon2.low_level import hash_secret_raw
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text

from keel.app import create_app
from keel.identity.passwords import common_passwords, password_problem
from keel.identity.service import IDENTITY
from keel.platform.errors import ServiceUnavailable
from keel.platform.host_slots import HostSlots
from keel.platform.security import PasswordHasher, argon2id_raw
from keel.settings import Settings
from tests.conftest import register_user
from tests.identity.conftest import login
from tests.platform.test_http import assert_envelope


async def _stored_hash(app: FastAPI) -> str:
    async with app.state.services.database.sessions() as session:
        return str((await session.execute(text("SELECT password_hash FROM users"))).scalar_one())


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.30", 1))
    return httpx.AsyncClient(transport=transport, base_url="http://keel.test")


async def test_production_argon2_parameters_once(
    make_settings: Callable[..., Settings],
) -> None:
    config = make_settings(
        argon2_memory_kib=65536, argon2_time_cost=3, argon2_parallelism=4, rate_limit_enabled=False
    )
    app = create_app(config)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        _client(app) as client,
    ):
        user = await register_user(client)
        assert (await login(client, user.email, user.password)).status_code == 200
        params = extract_parameters(await _stored_hash(app))
    assert (params.memory_cost, params.time_cost, params.parallelism) == (65536, 3, 4)
    assert params.type.name == "ID"


async def test_hash_is_upgraded_on_login_when_parameters_change(
    make_settings: Callable[..., Settings],
) -> None:
    cheap = make_settings(rate_limit_enabled=False)
    stronger = make_settings(rate_limit_enabled=False, argon2_memory_kib=2048, argon2_time_cost=2)
    first = create_app(cheap)
    async with (
        LifespanManager(first, startup_timeout=30, shutdown_timeout=30),
        _client(first) as client,
    ):
        user = await register_user(client)
        before = await _stored_hash(first)
    second = create_app(stronger)
    async with (
        LifespanManager(second, startup_timeout=30, shutdown_timeout=30),
        _client(second) as client,
    ):
        assert (await login(client, user.email, user.password)).status_code == 200
        after = await _stored_hash(second)
        assert (await login(client, user.email, user.password)).status_code == 200
        assert await _stored_hash(second) == after  # no rehash when already current
    assert before != after
    assert extract_parameters(before).memory_cost == 1024
    assert (extract_parameters(after).memory_cost, extract_parameters(after).time_cost) == (2048, 2)


async def test_full_hash_pool_answers_503_with_retry_after(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(
        make_settings(rate_limit_enabled=False, hash_pool_size=1, hash_queue_timeout_seconds=0.2)
    )
    release = threading.Event()
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        _client(app) as client,
    ):
        user = await register_user(client)
        hasher = app.state.services.get(IDENTITY).hasher
        # Occupy the only hashing slot, as a long hash would.
        busy = asyncio.ensure_future(hasher._run(release.wait, 10))
        await asyncio.sleep(0.05)
        try:
            response = await login(client, user.email, user.password)
        finally:
            release.set()
            await busy
        body = assert_envelope(response, 503, "HASH_POOL_BUSY")
        assert "requestId" in body
        assert int(response.headers["retry-after"]) >= 1
        assert (await login(client, user.email, user.password)).status_code == 200


def test_common_password_list_is_bundled_and_usable() -> None:
    passwords = common_passwords()
    assert len(passwords) > 10_000
    assert all(len(p) >= 8 for p in passwords)
    assert password_problem("correct horse battery staple") is None
    assert password_problem("PASSWORD1") is not None
    assert password_problem("Password") is not None


async def test_unknown_email_costs_one_verification(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    hasher = app.state.services.get(IDENTITY).hasher
    calls: list[str] = []
    real = hasher._verify

    def counting(hash_: str, password: str) -> None:
        """Forwards to the real verification, noting which hash it used."""
        calls.append(hash_)
        real(hash_, password)

    hasher._verify = counting  # type: ignore[method-assign]
    try:
        assert_envelope(
            await login(client, "nobody@example.com", "whatever password"),
            401,
            "INVALID_CREDENTIALS",
        )
    finally:
        del hasher._verify  # the class's method again
    assert calls == [hasher._dummy_hash]


async def test_hashes_are_standard_argon2id_computed_on_one_thread() -> None:
    """Keel computes Argon2id on one thread per hash (no lane threads, issue 11); the result
    is the reference one, so hashes stay interchangeable with argon2-cffi's both ways."""
    reference = Argon2Hasher(time_cost=2, memory_cost=1024, parallelism=4)
    ours = PasswordHasher(memory_kib=1024, time_cost=2, parallelism=4, pool_size=1, queue_timeout=5)
    try:
        password = "correct horse ✓ battery"
        mine = await ours.hash(password)
        assert mine.startswith("$argon2id$v=19$m=1024,t=2,p=4$")
        assert reference.verify(mine, password)
        with pytest.raises(VerifyMismatchError):
            reference.verify(mine, password + "!")
        theirs = reference.hash(password)
        assert await ours.verify(theirs, password)
        assert not await ours.verify(theirs, "not it")
        assert not ours.needs_rehash(mine)
        salt = os.urandom(16)
        assert argon2id_raw(
            b"pw", salt, time_cost=2, memory_kib=1024, lanes=4, hash_len=32
        ) == hash_secret_raw(b"pw", salt, 2, 1024, 4, 32, Type.ID)
        # Other variants still verify, through the library.
        legacy = Argon2Hasher(type=Type.I, time_cost=2, memory_cost=1024).hash(password)
        assert await ours.verify(legacy, password)
        assert not await ours.verify(legacy, "not it")
    finally:
        ours.close()


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plain text",
        "$argon2id$v=19$m=1024,t=2,p=4$!!!$abc",
        "$argon2id$v=19$m=1024,t=2,p=4$c2FsdHNhbHQ$",
        "$argon2id$v=19$m=1,t=2,p=4$c2FsdHNhbHQ$YWJjZGVmZ2g",  # m below 8 x lanes
        "$argon2id$v=19$m=99999999999,t=2,p=4$c2FsdHNhbHQ$YWJjZGVmZ2g",
    ],
)
async def test_a_malformed_stored_hash_never_verifies(stored: str) -> None:
    ours = PasswordHasher(memory_kib=1024, time_cost=2, parallelism=4, pool_size=1, queue_timeout=5)
    try:
        assert not await ours.verify(stored, "anything")
    finally:
        ours.close()


async def test_the_hash_bound_is_the_hosts_and_a_dead_holders_slot_comes_free(
    tmp_path: Path,
) -> None:
    """The worker processes of one host share KEEL_HASH_POOL_SIZE (issue 11): while another
    process holds the only slot, a hash here waits and then gets the fast 503; once that
    process dies, the kernel frees its slot."""
    slots = HostSlots(tmp_path / "hash-slots", 1)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            f"fd = os.open({str(tmp_path / 'hash-slots' / 'slot-0.lock')!r}, os.O_RDWR)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ours = PasswordHasher(
        memory_kib=1024,
        time_cost=1,
        parallelism=1,
        pool_size=1,
        queue_timeout=0.3,
        host_slots=slots,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ServiceUnavailable) as refused:
            await ours.hash("correct horse battery")
        assert refused.value.code == "HASH_POOL_BUSY"
        holder.kill()
        holder.wait(timeout=10)
        assert await ours.verify(await ours.hash("correct horse battery"), "correct horse battery")
    finally:
        holder.kill()
        ours.close()


async def test_two_hashers_sharing_one_slot_never_hash_at_once(tmp_path: Path) -> None:
    """Two hashers (as two processes would; flock makes no difference) take turns."""
    running: list[int] = []
    overlaps: list[int] = []

    def tracked(seconds: float) -> None:
        running.append(1)
        if len(running) > 1:
            overlaps.append(len(running))
        time.sleep(seconds)
        running.pop()

    hashers = [
        PasswordHasher(
            memory_kib=1024,
            time_cost=1,
            parallelism=1,
            pool_size=1,
            queue_timeout=5,
            host_slots=HostSlots(tmp_path / "slots", 1),
        )
        for _ in range(2)
    ]
    try:
        await asyncio.gather(*(h._run(tracked, 0.1) for h in hashers for _ in range(3)))
        assert overlaps == []
    finally:
        for hasher in hashers:
            hasher.close()


def test_host_slots_in_an_unwritable_place_fall_back_to_none(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert HostSlots.in_folder(blocker / "hash-slots", 1) is None
    assert HostSlots.in_folder(tmp_path / "hash-slots", 2) is not None
