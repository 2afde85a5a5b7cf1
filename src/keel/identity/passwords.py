"""Password rules: length and not a well-known password (checked offline, bundled list)."""

from __future__ import annotations

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


def check_new_password(password: str) -> str:
    """Pydantic validator for new passwords: raises ValueError naming the failed rule."""
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password
