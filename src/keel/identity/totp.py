"""TOTP codes for MFA: secrets sealed per user, and each time step accepted only once."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import pyotp

from keel.identity.models import User
from keel.platform.security import Encryptor

TOTP_ISSUER = "Keel"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def seal_secret(encryptor: Encryptor, *, user: User, secret: str) -> None:
    """Store the secret encrypted, bound to the user's id."""
    user.mfa_secret_encrypted = encryptor.encrypt(secret.encode(), associated_data=user.id.bytes)


def _secret_of(encryptor: Encryptor, user: User) -> str:
    assert user.mfa_secret_encrypted is not None
    return encryptor.decrypt(user.mfa_secret_encrypted, associated_data=user.id.bytes).decode()


def _accepted_step(secret: str, code: str, *, last_step: int | None) -> int | None:
    """The time step a code belongs to (now, or one step either side for clock drift),
    unless that step was already used."""
    totp = pyotp.TOTP(secret)
    now = datetime.now(UTC)
    for drift in (0, -1, 1):
        moment = now + timedelta(seconds=drift * totp.interval)
        if hmac.compare_digest(totp.at(moment), code):
            step = int(totp.timecode(moment))
            return step if last_step is None or step > last_step else None
    return None


def accept_code(encryptor: Encryptor, *, user: User, code: str) -> bool:
    """Whether the code is valid for the user's enrolled secret; a valid code uses up its
    time step, so it cannot be replayed."""
    step = _accepted_step(_secret_of(encryptor, user), code, last_step=user.mfa_last_step)
    if step is None:
        return False
    user.mfa_last_step = step
    return True
