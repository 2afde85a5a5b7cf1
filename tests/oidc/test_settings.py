"""OpenID settings: providers from KEEL_OIDC_PROVIDERS and KEEL_OIDC_<NAME>_*, the allow-list."""

from __future__ import annotations

import pytest

from keel.identity.oidc_rules import allowed_redirect, with_params
from keel.settings import ConfigurationError, OidcProvider, Settings

PRODUCTION = {
    "env": "production",
    "secret_key": "s" * 48,
    "database_url": "postgresql+asyncpg://keel@db/keel",
}


def test_providers_come_from_the_environment_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_OIDC_PROVIDERS", "Corp, azure-ad")
    monkeypatch.setenv("KEEL_OIDC_CORP_ISSUER", "https://id.corp.example")
    monkeypatch.setenv("KEEL_OIDC_CORP_CLIENT_ID", "keel")
    monkeypatch.setenv("KEEL_OIDC_CORP_CLIENT_SECRET", "shh")
    monkeypatch.setenv("keel_oidc_azure_ad_issuer", "https://login.example/tenant/v2.0")
    monkeypatch.setenv("KEEL_OIDC_AZURE_AD_CLIENT_ID", "app-id")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.oidc_providers == {
        "corp": OidcProvider(
            issuer="https://id.corp.example", client_id="keel", client_secret="shh"
        ),
        "azure-ad": OidcProvider(
            issuer="https://login.example/tenant/v2.0", client_id="app-id", client_secret=""
        ),
    }


def test_providers_come_from_a_dotenv_file(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    with open(".env", "w") as env:
        env.write(
            "KEEL_OIDC_PROVIDERS=corp\n"
            "KEEL_OIDC_CORP_ISSUER=https://id.corp.example\n"
            "KEEL_OIDC_CORP_CLIENT_ID=keel\n"
        )
    assert Settings().oidc_providers["corp"].client_id == "keel"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"oidc_providers": "corp", "oidc_corp_client_id": "x"}, "KEEL_OIDC_CORP_ISSUER"),
        ({"oidc_providers": "corp", "oidc_corp_issuer": "https://x"}, "KEEL_OIDC_CORP_CLIENT_ID"),
        ({"oidc_providers": "bad name"}, "not a provider name"),
        ({"oidc_providers": "a/b"}, "not a provider name"),
        ({"oidc_providers": "x" * 33}, "not a provider name"),
    ],
)
def test_an_incomplete_provider_is_refused_at_start(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_production_needs_a_public_url_and_https_issuers() -> None:
    corp = {
        "oidc_providers": "corp",
        "oidc_corp_issuer": "https://id.corp.example",
        "oidc_corp_client_id": "keel",
    }
    with pytest.raises(ConfigurationError, match="KEEL_PUBLIC_URL"):
        Settings(_env_file=None, **PRODUCTION, **corp)  # type: ignore[call-arg]
    plain = {**corp, "oidc_corp_issuer": "http://id.corp.example"}
    with pytest.raises(ConfigurationError, match="KEEL_OIDC_CORP_ISSUER must be https"):
        Settings(  # type: ignore[call-arg]
            _env_file=None, **PRODUCTION, **plain, public_url="https://keel.example"
        )
    ok = Settings(  # type: ignore[call-arg]
        _env_file=None, **PRODUCTION, **corp, public_url="https://keel.example/"
    )
    assert ok.public_url == "https://keel.example"


@pytest.mark.parametrize(
    "entry", ["front.test/cb", "ftp://front.test/", "https://front.test/#x", "http://a@b/"]
)
def test_allow_list_entries_must_be_absolute_http_uris(entry: str) -> None:
    with pytest.raises(ValueError, match="KEEL_OIDC_REDIRECT_ALLOWLIST"):
        Settings(_env_file=None, oidc_redirect_allowlist=entry)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("https://app.example/auth/done", True),
        ("https://app.example/auth/done?next=1", False),
        ("https://app.example/auth/done/", False),
        ("http://localhost:5173/anything?x=1", True),
        ("http://LOCALHOST:5173/", True),
        ("http://localhost:5174/", False),
        ("http://localhost/", False),
        ("https://app.example.evil/auth/done", False),
        ("https://app.example:99999/", False),
        ("https://app.example/auth/done\n", False),
        ("", False),
    ],
)
def test_the_allow_list_matches_exact_uris_and_origins(uri: str, allowed: bool) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        oidc_redirect_allowlist="https://app.example/auth/done, http://localhost:5173",
    )
    assert allowed_redirect(settings, uri) is allowed


def test_params_are_added_to_the_query() -> None:
    assert with_params("https://a.example/x?y=1", {"code": "c d"}) == (
        "https://a.example/x?y=1&code=c+d"
    )
    assert with_params("https://a.example/x", {"error": "E"}) == "https://a.example/x?error=E"
