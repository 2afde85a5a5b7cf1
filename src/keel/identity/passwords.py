"""Password rules: length, not a common password, not derived from the e-mail or name."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

MIN_LENGTH = 8
MAX_LENGTH = 128


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The bundled list (zxcvbn's most common passwords of 8+ characters), lower-cased."""
    text = resources.files("keel.identity").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("# ")
    )


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"Must be at most {MAX_LENGTH} characters"
    if password.strip().lower() in common_passwords():
        return "Is a commonly used password; choose a less guessable one"
    return None


# Identifier parts shorter than this are too common inside unrelated passwords to refuse on.
MIN_IDENTIFIER_PART = 4


def _letters_and_digits(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _identifier_parts(*, email: str | None, name: str | None) -> set[str]:
    """The account's own words: e-mail, its local part and pieces, the name and its pieces."""
    parts: set[str] = set()
    texts: list[str] = []
    if email:
        local = email.split("@", 1)[0]
        texts += [email, local, *re.split(r"[^\w]+|_", local)]
    if name:
        texts += [name, *name.split()]
    for text in texts:
        cleaned = _letters_and_digits(text)
        if len(cleaned) >= MIN_IDENTIFIER_PART or cleaned in (
            _letters_and_digits(email or "").split("@")[0],
            _letters_and_digits(name or ""),
        ):
            parts.add(cleaned)
    parts.discard("")
    return parts


def identifier_problem(password: str, *, email: str | None, name: str | None) -> str | None:
    """NIST SP 800-63B 3.1.1.2: refuse a password derived from the account's identifiers.

    Case, spaces and symbols are ignored; a password is derived when it equals the e-mail,
    its local part, the name or one of their words, or when what is left after taking such
    a word (4+ characters) out is only digits or under 4 characters ("alice2024!",
    "Alice.Alice"). A passphrase that merely contains the name ("a root passphrase") passes.
    """
    candidate = _letters_and_digits(password)
    for part in _identifier_parts(email=email, name=name):
        if candidate == part:
            return "Must not be your e-mail address or name"
        if len(part) >= MIN_IDENTIFIER_PART and part in candidate:
            rest = candidate.replace(part, "")
            if len(rest) < MIN_IDENTIFIER_PART or rest.isdigit():
                return "Must not be derived from your e-mail address or name"
    return None


def check_new_password(password: str) -> str:
    """Pydantic validator for new passwords: raises ValueError naming the failed rule."""
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password
