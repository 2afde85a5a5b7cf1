"""Fixtures for account-mail tests: a real SMTP server on loopback (aiosmtpd) that keeps
every message it receives, and the job worker on so queued mails are delivered."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from keel.settings import Settings
from tests.conftest import is_postgres
from tests.webhooks.conftest import reset_job_store

PUBLIC_URL = "https://app.example"
FAST_JOBS = {
    "jobs_enabled": True,
    "jobs_poll_seconds": 0.1,
    "jobs_executor_timeout_seconds": 3.0,
}
# Long enough for a loaded CI machine; a wait only ends early, it asserts no speed.
WAIT_SECONDS = 30.0


@dataclass
class Mailbox:
    """What the SMTP server received, one parsed message per recipient."""

    messages: list[tuple[str, EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append((rcpt.lower(), message))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpt, m in self.messages if rcpt == address.lower()]

    async def wait(self, address: str, count: int = 1) -> list[EmailMessage]:
        """The first `count` messages to an address, once that many have arrived."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        while len(found := self.to(address)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{count} mail(s) to {address} never arrived: {found}")
            await asyncio.sleep(0.05)
        return found[:count]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def mailbox(smtp: tuple[Mailbox, int]) -> Mailbox:
    return smtp[0]


@pytest.fixture
async def mail_settings(
    make_settings: Callable[..., Settings], database_url: str, smtp: tuple[Mailbox, int]
) -> Callable[..., Settings]:
    if is_postgres():
        await reset_job_store(database_url)

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **FAST_JOBS,
            "smtp_url": f"smtp://127.0.0.1:{smtp[1]}",
            "public_url": PUBLIC_URL,
            "mail_from": "Keel <no-reply@keel.test>",
        }
        values.update(overrides)
        return make_settings(**values)

    return factory


@pytest.fixture
def settings(mail_settings: Callable[..., Settings]) -> Settings:
    return mail_settings()


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain-text and the HTML body of a message (both must be there)."""
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


def link_token(message: EmailMessage, page: str) -> str:
    """The token of the link to {PUBLIC_URL}/{page} — the same in both parts."""
    text, html = parts(message)
    pattern = re.escape(f"{PUBLIC_URL}/{page}?token=") + r"([A-Za-z0-9_\-%]+)"
    in_text = re.search(pattern, text)
    in_html = re.search(pattern, html)
    assert in_text, text
    assert in_html, html
    assert in_text.group(1) == in_html.group(1)
    return in_text.group(1)


def eml_files(data_dir: Path) -> list[Path]:
    folder = data_dir / "mail"
    return sorted(folder.glob("*.eml")) if folder.exists() else []
