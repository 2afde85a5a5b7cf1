"""Cryptographic building blocks: Argon2id in a bounded pool, JWT, AES-256-GCM."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2.low_level as argon2_ll
import jwt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type, extract_parameters
from argon2.exceptions import (
    HashingError,
    InvalidHashError,
    VerificationError,
    VerifyMismatchError,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from keel.platform.errors import ServiceUnavailable
from keel.platform.host_slots import HostSlots, SlotsBusy

# Any: the CFFI library object of the reference implementation (constants and argon2_ctx).
_ARGON2_LIB: Any = argon2_ll.lib  # type: ignore[attr-defined]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def argon2id_raw(
    password: bytes, salt: bytes, *, time_cost: int, memory_kib: int, lanes: int, hash_len: int
) -> bytes:
    """Argon2id of `password`, computed on the calling thread alone.

    argon2-cffi's own calls run one OS thread per lane (`threads = parallelism`), so one
    sign-in at p=4 becomes four runnable threads, and a few concurrent sign-ins outnumber the
    event loops by ten to one in the kernel's scheduler: reads starved during a login flood
    (issue 11). The lanes, and so the hash, are unchanged with one thread (Argon2 RFC 9106
    §3.2: the thread count is an implementation choice); only the wall time of a single hash
    grows, and on a loaded machine barely (measured: 237 ms with one thread, 283-320 ms with
    four). This uses argon2-cffi's documented low-level binding to the reference `argon2_ctx`.
    """
    ffi = argon2_ll.ffi
    out = ffi.new("uint8_t[]", hash_len)
    pwd = ffi.new("uint8_t[]", password)
    salt_buffer = ffi.new("uint8_t[]", salt)
    context = ffi.new(
        "argon2_context *",
        {
            "version": argon2_ll.ARGON2_VERSION,
            "out": out,
            "outlen": hash_len,
            "pwd": pwd,
            "pwdlen": len(password),
            "salt": salt_buffer,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": time_cost,
            "m_cost": memory_kib,
            "lanes": lanes,
            "threads": 1,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            # Wipes our copy of the password once read (the working memory is always wiped).
            "flags": _ARGON2_LIB.ARGON2_FLAG_CLEAR_PASSWORD,
        },
    )
    code = argon2_ll.core(context, Type.ID.value)
    if code != _ARGON2_LIB.ARGON2_OK:
        raise HashingError(argon2_ll.error_to_str(code))
    return bytes(ffi.buffer(out, hash_len))


class PasswordHasher:
    """Argon2id hashing on a small thread pool, one OS thread per hash in flight.

    The reference code releases the GIL, so hashes run truly in parallel on the pool's threads,
    while the pool size bounds CPU and memory (each hash in flight holds `memory_kib`). Each
    hash runs on its pool thread alone (see `argon2id_raw`), so a login flood takes at most
    `pool_size` cores and the event loop keeps its share of the CPU. With `host_slots`, that
    bound holds for every process sharing them (the workers of one host), not per process.
    Callers wait for a slot at most `queue_timeout` seconds, then get a 503 instead of piling
    up. Hashes are
    standard PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), interchangeable with
    argon2-cffi's.
    """

    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        pool_size: int,
        queue_timeout: float,
        host_slots: HostSlots | None = None,
    ) -> None:
        self._hasher = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(pool_size)
        self._queue_timeout = queue_timeout
        self._host_slots = host_slots
        self.pool_size = pool_size
        # Verified against when the email is unknown, so that path costs one verification too.
        self._dummy_hash = self._hash(os.urandom(16).hex())

    def _hash(self, password: str) -> str:
        # The parameters, salt and hash lengths are the library hasher's, so that
        # `needs_rehash` (its check) judges these hashes by the same values.
        params = self._hasher
        salt = os.urandom(params.salt_len)
        raw = argon2id_raw(
            password.encode(),
            salt,
            time_cost=params.time_cost,
            memory_kib=params.memory_cost,
            lanes=params.parallelism,
            hash_len=params.hash_len,
        )
        return (
            f"$argon2id$v={argon2_ll.ARGON2_VERSION}$m={params.memory_cost},"
            f"t={params.time_cost},p={params.parallelism}${_b64(salt)}${_b64(raw)}"
        )

    def _verify(self, password_hash: str, password: str) -> None:
        """Raises VerifyMismatchError on a wrong password, InvalidHashError on a bad hash."""
        try:
            params = extract_parameters(password_hash)
            salt_b64, hash_b64 = password_hash.rsplit("$", 2)[1:]
            salt, expected = _unb64(salt_b64), _unb64(hash_b64)
        except (InvalidHashError, ValueError) as exc:
            raise InvalidHashError(str(exc)) from exc
        if params.type is not Type.ID or params.version != argon2_ll.ARGON2_VERSION:
            self._hasher.verify(password_hash, password)  # older variants: the library's way
            return
        try:
            actual = argon2id_raw(
                password.encode(),
                salt,
                time_cost=params.time_cost,
                memory_kib=params.memory_cost,
                lanes=params.parallelism,
                hash_len=len(expected),
            )
        except (HashingError, OverflowError) as exc:  # parameters out of Argon2's range
            raise InvalidHashError(str(exc)) from exc
        if not hmac.compare_digest(actual, expected):
            raise VerifyMismatchError("The password does not match the supplied hash")

    def _busy(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            "Too many sign-ins in progress; try again shortly",
            headers={"Retry-After": str(max(1, round(self._queue_timeout)))},
            code="HASH_POOL_BUSY",
        )

    async def _run(self, fn: Any, *args: Any) -> Any:
        # Any: forwards an arbitrary argon2 call and its result.
        deadline = time.monotonic() + self._queue_timeout
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=self._queue_timeout)
        except TimeoutError as exc:
            raise self._busy() from exc
        call = functools.partial(fn, *args)
        if self._host_slots is not None:
            call = functools.partial(self._host_slots.run, deadline, call)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except SlotsBusy as exc:
            raise self._busy() from exc
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        result: str = await self._run(self._hash, password)
        return result

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; an unknown user (None) still costs one verification."""
        target = password_hash or self._dummy_hash
        try:
            await self._run(self._verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TokenError(Exception):
    """A token that is malformed, expired, forged or of the wrong type."""


class TokenCodec:
    """Signs and verifies JWTs. HS256 from the secret by default; RS256/EdDSA with a key pair."""

    def __init__(
        self,
        *,
        algorithm: str,
        secret: str,
        issuer: str,
        private_key: Any = None,
        key_id: str | None = None,
    ) -> None:
        # Any: a cryptography private key object of the algorithm's type.
        self.algorithm = algorithm
        self.issuer = issuer
        self.key_id = key_id
        if algorithm == "HS256":
            self._signing_key: Any = derive_key(secret, b"jwt-hs256")
            self._verify_key: Any = self._signing_key
        else:
            if private_key is None:
                raise ValueError(f"{algorithm} needs a private key")
            self._signing_key = private_key
            self._verify_key = private_key.public_key()
            self.key_id = key_id or _thumbprint(self._public_jwk())

    @property
    def public_key(self) -> Any:
        # Any: a cryptography public key; None for HMAC.
        return None if self.algorithm == "HS256" else self._verify_key

    def _public_jwk(self) -> dict[str, str]:
        if self.algorithm == "RS256":
            jwk: dict[str, str] = RSAAlgorithm.to_jwk(self._verify_key, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(self._verify_key, as_dict=True)
        return {k: str(v) for k, v in jwk.items()}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public keys as a JWK Set (empty for HS256: a shared secret is never published)."""
        if self.algorithm == "HS256":
            return {"keys": []}
        jwk = self._public_jwk()
        jwk.update({"kid": self.key_id or "", "use": "sig", "alg": self.algorithm})
        return {"keys": [jwk]}

    def encode(
        self,
        *,
        subject: str,
        token_type: str,
        ttl: timedelta,
        claims: Mapping[str, Any] | None = None,
        jti: str | None = None,
        now: datetime | None = None,
    ) -> str:
        issued = now or datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": subject,
            "type": token_type,
            "iat": int(issued.timestamp()),
            "exp": int((issued + ttl).timestamp()),
            "jti": jti or uuid.uuid4().hex,
            "iss": self.issuer,
            **(claims or {}),
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(payload, self._signing_key, algorithm=self.algorithm, headers=headers)

    def decode(self, token: str, *, token_type: str) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],  # never 'none', never another family
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "jti", "type"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        if payload.get("type") != token_type:
            raise TokenError(f"expected a {token_type} token")
        return payload


def _thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638 thumbprint: SHA-256 of the required members, sorted, without whitespace."""
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def load_signing_key(*, algorithm: str, key_file: Path | None, data_dir: Path) -> Any:
    """The private key for RS256/EdDSA (None for HS256).

    From `key_file` when configured (PEM, PKCS#8). Otherwise one is generated once into
    <data_dir>/jwt-<alg>.pem (mode 0600), which suits one host; several instances must share
    a configured key file.
    """
    # Any: a cryptography private key of the algorithm's type.
    if algorithm == "HS256":
        return None
    path = key_file or data_dir / f"jwt-{algorithm.lower()}.pem"
    if not path.exists():
        key: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ed25519.Ed25519PrivateKey.generate()
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # pragma: no cover - another worker wrote it first
            pass
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    expected = rsa.RSAPrivateKey if algorithm == "RS256" else ed25519.Ed25519PrivateKey
    if not isinstance(loaded, expected):
        raise ValueError(f"{path} does not hold a key for {algorithm}")
    return loaded


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of a value, hex: derives one secret from another without storing either."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def derive_key(secret: str, purpose: bytes) -> bytes:
    """A 32-byte key for one purpose, derived from the service secret (HMAC-SHA256)."""
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class Encryptor:
    """AES-256-GCM for secrets at rest (e.g. TOTP seeds); output is nonce || ciphertext."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, plaintext: bytes, *, associated_data: bytes = b"") -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, blob: bytes, *, associated_data: bytes = b"") -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], associated_data)
