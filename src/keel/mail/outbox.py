"""Sending mail: queued as a durable job in the caller's transaction, delivered by the job
engine over SMTP (retried by the engine on failure) or, without SMTP, written to
<data_dir>/mail/*.eml.

The queued payload holds the message (with its one-time link) sealed with the app's
at-rest key, so the job store never holds a usable token in clear. Logs name the recipient
and subject only, never a body or a link.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from keel.jobs.engine import JobEngine, Payload, enqueue
from keel.mail.templates import Rendered
from keel.platform.security import Encryptor
from keel.platform.services import Slot
from keel.settings import Settings

log = structlog.get_logger("keel.mail")

MAIL_JOB = "mail.send"
_SEAL_CONTEXT = b"keel-mail-v1"


async def queue_mail(
    session: AsyncSession,
    encryptor: Encryptor,
    *,
    to: str,
    content: Rendered,
    key: str | None = None,
) -> None:
    """Queue one message in the caller's transaction: it goes out only if that commits."""
    body = orjson.dumps(
        {"to": to, "subject": content.subject, "text": content.text, "html": content.html}
    )
    sealed = base64.urlsafe_b64encode(encryptor.encrypt(body, associated_data=_SEAL_CONTEXT))
    await enqueue(
        session,
        MAIL_JOB,
        {"sealed": sealed.decode()},
        key=f"mail:{key or uuid.uuid4().hex}",
    )


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where KEEL_SMTP_URL points."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool  # smtps://: TLS from the first byte
    start_tls: bool | None  # ?starttls=true: required; false: never; absent: if offered

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        implicit = parts.scheme == "smtps"
        query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
        starttls = query.get("starttls")
        return cls(
            hostname=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            start_tls=None if implicit or starttls is None else starttls in ("true", "1", "yes"),
        )


def build_message(settings: Settings, *, to: str, content: Rendered) -> EmailMessage:
    """A multipart/alternative message: the plain-text part first, the HTML part preferred."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = content.subject
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message


def _address(to: str) -> str:
    # Validates the recipient (raises on a malformed one) before anything is sent.
    return str(Address(addr_spec=to))


@dataclass(eq=False)
class Mailer:
    """The mail job's handler: unseals a queued message and delivers it."""

    settings: Settings
    encryptor: Encryptor

    @classmethod
    def wire(cls, *, settings: Settings, encryptor: Encryptor, jobs: JobEngine) -> Mailer:
        mailer = cls(settings=settings, encryptor=encryptor)
        jobs.define(MAIL_JOB, mailer.deliver, retry_delays=settings.mail_retry_delays)
        return mailer

    async def deliver(self, payload: Payload) -> None:
        sealed = base64.urlsafe_b64decode(str(payload["sealed"]))
        data = orjson.loads(self.encryptor.decrypt(sealed, associated_data=_SEAL_CONTEXT))
        to = _address(str(data["to"]))
        content = Rendered(subject=data["subject"], text=data["text"], html=data["html"])
        await self.send(to=to, content=content)

    async def send(self, *, to: str, content: Rendered) -> None:
        message = build_message(self.settings, to=to, content=content)
        if not self.settings.smtp_url:
            path = self._write_eml(message)
            log.info("mail_written", to=to, subject=content.subject, file=path.name)
            return
        target = SmtpTarget.parse(self.settings.smtp_url)
        try:
            await aiosmtplib.send(
                message,
                hostname=target.hostname,
                port=target.port,
                username=target.username,
                password=target.password,
                use_tls=target.use_tls,
                start_tls=target.start_tls,
                timeout=self.settings.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # The engine retries; the log names the failure, not the message's content.
            log.warning(
                "mail_send_failed", to=to, subject=content.subject, error=type(exc).__name__
            )
            raise
        log.info("mail_sent", to=to, subject=content.subject)

    def _write_eml(self, message: EmailMessage) -> Path:
        folder = self.settings.data_dir / "mail"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:12]}.eml"
        final = folder / name
        partial = folder / f".{name}.tmp"
        # Written whole, then renamed: a reader never sees half a message. 0600: the file
        # holds a live one-time link.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes())
        partial.replace(final)
        return final


MAILER: Slot[Mailer] = Slot("mailer")
