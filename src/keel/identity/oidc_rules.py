"""What an OpenID Connect sign-in accepts: claim limits, its failures, redirect URIs."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from keel.platform.errors import AppError, NotFound, ServiceUnavailable
from keel.settings import Settings

SCOPE = "openid email profile"
# Clock skew allowed on the ID token's exp/iat/nbf.
LEEWAY_SECONDS = 60
MAX_NAME = 100
MAX_EMAIL = 320
MAX_SUBJECT = 255


class OidcFailure(AppError):
    """A sign-in that cannot finish: rendered as `?error=<code>` on the redirectUri when that
    is known, else as the error envelope with this status."""

    status_code = 400
    code = "OIDC_FAILED"
    default_message = "The sign-in with the identity provider failed"


def unknown_provider() -> NotFound:
    return NotFound("No such identity provider", code="UNKNOWN_PROVIDER")


def invalid_state(message: str = "Unknown, used or expired sign-in state") -> OidcFailure:
    return OidcFailure(message, code="INVALID_STATE")


def invalid_id_token() -> OidcFailure:
    return OidcFailure("The identity provider's ID token did not verify", code="INVALID_ID_TOKEN")


def provider_unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The identity provider cannot be reached", code="OIDC_PROVIDER_UNAVAILABLE"
    )


# --- configuration ------------------------------------------------------------------------


def allowed_redirect(settings: Settings, uri: str) -> bool:
    """Whether `uri` is on KEEL_OIDC_REDIRECT_ALLOWLIST: equal to an entry with a path, or on
    the origin of an entry without one. No fragment, no user info, http(s) only."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        return False
    if "@" in parts.netloc or any(ch.isspace() or ord(ch) < 32 for ch in uri):
        return False
    origin = f"{parts.scheme}://{parts.hostname}{'' if port is None else f':{port}'}"
    for entry in settings.oidc_redirect_allowlist:
        allowed = urlsplit(entry)
        if allowed.path in ("", "/") and not allowed.query:
            if origin == f"{allowed.scheme}://{allowed.netloc}".lower():
                return True
        elif uri == entry:
            return True
    return False


def with_params(uri: str, params: dict[str, str]) -> str:
    """`uri` with `params` added to its query (its own parameters kept)."""
    parts = urlsplit(uri)
    query = "&".join(part for part in (parts.query, urlencode(params)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
