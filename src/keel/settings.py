"""The one Settings object: every tunable of Keel, read from KEEL_* environment variables."""

from __future__ import annotations

import os
import re
import secrets
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MIN_SECRET_LENGTH = 32
# Placeholders people copy from examples; never acceptable in production.
WEAK_SECRETS = frozenset({"changeme", "change-me", "secret", "keel", "development", "test"})


class Env(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class ConfigurationError(RuntimeError):
    """Raised at start-up when the configuration cannot be run safely."""


# An OpenID provider's name: the {provider} of its routes and the <NAME> of its variables.
OIDC_PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class OidcProvider(BaseModel):
    """One OpenID Connect provider (SPEC §11), from KEEL_OIDC_<NAME>_ISSUER, _CLIENT_ID and
    _CLIENT_SECRET; discovery and the JWKS come from the issuer."""

    model_config = ConfigDict(frozen=True)

    issuer: str
    client_id: str
    client_secret: str = ""  # empty: a public client (PKCE only, no client authentication)


def _oidc_variable(name: str, part: str) -> str:
    return f"oidc_{name.replace('-', '_')}_{part}"


def _oidc_providers(raw: str, values: dict[str, object]) -> dict[str, OidcProvider]:
    """KEEL_OIDC_PROVIDERS=name,… with each provider's KEEL_OIDC_<NAME>_* variables, read from
    the settings' own input (arguments, .env) or else the environment (any case)."""
    environment = {key.lower(): value for key, value in os.environ.items()}
    providers: dict[str, OidcProvider] = {}
    for name in (part.strip().lower() for part in raw.split(",")):
        if not name:
            continue
        if not OIDC_PROVIDER_NAME.fullmatch(name):
            raise ConfigurationError(
                f"KEEL_OIDC_PROVIDERS: {name!r} is not a provider name "
                "(lower-case letters, digits and hyphens, at most 32)"
            )
        found: dict[str, str] = {}
        for part in ("issuer", "client_id", "client_secret"):
            key = _oidc_variable(name, part)
            value = values.get(key, environment.get(f"keel_{key}"))
            if value:
                found[part] = str(value).strip()
        for part in ("issuer", "client_id"):
            if not found.get(part):
                variable = f"KEEL_{_oidc_variable(name, part).upper()}"
                raise ConfigurationError(f"{variable} is required for the OpenID provider {name!r}")
        providers[name] = OidcProvider(**found)
    return providers


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KEEL_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        # An empty variable (KEEL_HASH_POOL_SIZE= in a copied .env.example) means "default".
        env_ignore_empty=True,
    )

    # --- process -------------------------------------------------------------------------
    env: Env = Env.development
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    data_dir: Path = Path("./data")
    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    # Freeze start-up's objects out of the garbage collector and collect less often once
    # serving (platform/gc_tuning.py): each full collection stopped the event loop ~200 ms.
    gc_tuning: bool = True
    # SIGTERM: /ready answers 503 at once; in-flight requests get this long to finish.
    shutdown_timeout_seconds: float = Field(default=30.0, ge=0)
    # Keep accepting (with /ready at 503) this long after SIGTERM before the server stops
    # listening; 0 where the orchestrator already waits (Kubernetes' preStop pause).
    shutdown_delay_seconds: float = Field(default=0.0, ge=0)
    # OTLP/HTTP endpoint (e.g. http://collector:4318): spans for HTTP, SQL, Redis, outgoing
    # HTTP; empty: no tracing.
    otel_exporter_otlp_endpoint: str = ""
    otel_service_name: str = "keel"

    # --- storage -------------------------------------------------------------------------
    database_url: str = ""  # empty: sqlite+aiosqlite:///<data_dir>/keel.db
    database_replica_url: str | None = None
    redis_url: str | None = None
    allow_sqlite_in_production: bool = False
    auto_migrate: bool | None = None  # None: migrate on start only in the embedded shape
    # A fixed pool by default: SQLAlchemy's async pool closes an overflow connection it gets
    # back while its queue is full, and under a burst of writes that meant ~70 new PostgreSQL
    # connections (a forked backend each) per second and a third less create throughput.
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=0, ge=0)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=5000, ge=0)
    # A pooled PostgreSQL connection unused this long is pinged before it is handed out.
    db_ping_idle_seconds: float = Field(default=2.0, ge=0)
    redis_max_connections: int = Field(default=64, ge=1)
    redis_timeout_seconds: float = Field(default=2.0, gt=0)

    # --- HTTP ----------------------------------------------------------------------------
    secret_key: str = ""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    hsts_max_age: int = 63072000

    # --- gRPC (SPEC §9): served beside HTTP when a port is set -------------------------
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    grpc_host: str | None = None  # default: the HTTP host

    # --- identity ------------------------------------------------------------------------
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_parallelism: int = Field(default=4, ge=1)
    # Concurrent Argon2 hashes on this host, one core each: half the cores, so a login flood
    # leaves the other half to every other request (issue 11). The worker processes sharing
    # KEEL_DATA_DIR share this bound (lock files in <data_dir>/hash-slots).
    hash_pool_size: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2), ge=1)
    hash_queue_timeout_seconds: float = Field(default=5.0, gt=0)
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=1)
    refresh_token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    refresh_grace_seconds: int = Field(default=10, ge=0)
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA"] = "HS256"
    jwt_private_key_file: Path | None = None
    jwt_issuer: str = "keel"
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1)
    login_lockout_seconds: int = Field(default=15 * 60, ge=1)
    # Failed sign-ins are answered ever later (0.25 s, 0.5 s, 1 s, …) up to this, then locked.
    login_failure_delay_max_seconds: float = Field(default=2.0, ge=0)
    # How long a session's liveness (revoked? user active? role) is cached; revocations
    # delete the entry on every instance, so this only bounds how often the database is asked.
    auth_cache_ttl_seconds: float = Field(default=60.0, gt=0)

    # --- account mail (SPEC §11; docs/operations.md "E-mail") ------------------------------
    # smtp://user:pass@host:587?starttls=true or smtps://user:pass@host:465; empty: each
    # message is written to <data_dir>/mail/*.eml instead (the embedded default).
    smtp_url: str = ""
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Seconds before each retry of a mail the server did not take; then the job is dead.
    mail_retry_schedule: str = "10,60,300,1800,7200"
    mail_from: str = "Keel <no-reply@localhost>"
    # Project writes by a user who has not verified their address get 403 EMAIL_NOT_VERIFIED.
    require_verified_email: bool = False
    # Account mails (reset, verification, change) one address may be sent per window.
    mail_rate_limit_per_address: str = "5/hour"
    password_reset_ttl_seconds: int = Field(default=30 * 60, ge=60)
    email_verify_ttl_seconds: int = Field(default=72 * 3600, ge=60)
    # --- external sign-in (SPEC §11, docs/oidc.md) ---------------------------------------
    # Where browsers reach Keel (e.g. https://keel.example.com): links in mail and the OpenID
    # callback {public_url}/api/v1/auth/oidc/<name>/callback. Empty (not in production): the
    # address the request came to.
    public_url: str = ""
    # KEEL_OIDC_PROVIDERS=name,…; each needs KEEL_OIDC_<NAME>_ISSUER and _CLIENT_ID and may
    # have _CLIENT_SECRET (<NAME> upper-cased, '-' as '_').
    oidc_providers: Annotated[dict[str, OidcProvider], NoDecode] = Field(default_factory=dict)
    # Where the front end may be sent back to: comma-separated exact URIs, or origins
    # (scheme://host[:port], no path) that allow any path on them. Empty: none.
    oidc_redirect_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    oidc_state_ttl_seconds: int = Field(default=600, ge=1)  # authorize -> callback
    oidc_code_ttl_seconds: int = Field(default=60, ge=1)  # callback -> exchange
    oidc_http_timeout_seconds: float = Field(default=10.0, gt=0)

    # --- projects ------------------------------------------------------------------------
    soft_delete_retention_days: int = Field(default=30, ge=0)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=1)

    # --- limits, cache, metrics ----------------------------------------------------------
    rate_limit_enabled: bool = True
    rate_limit_anonymous: str = "100/15minutes"
    rate_limit_authenticated: str = "1000/15minutes"
    rate_limit_auth_endpoints: str = "20/15minutes"
    rate_limit_fail_open: bool = True
    cache_l1_max_items: int = Field(default=10000, ge=0)
    cache_l1_ttl_seconds: float = Field(default=5.0, ge=0)
    cache_l2_ttl_seconds: int = Field(default=60, ge=1)
    metrics_token: str | None = None
    # Requests served at once per process; up to overload_queue_size more wait in line, at
    # most overload_queue_timeout_ms each, then get 503 + Retry-After (see platform/ratelimit).
    overload_max_concurrency: int = Field(default=64, ge=1)
    overload_queue_size: int = Field(default=512, ge=0)
    overload_queue_timeout_ms: int = Field(default=500, ge=0)

    # --- slow and oversized clients (keel.platform.server; docs/adr/0019-hardening-server.md)
    # A request head (request line and headers) must arrive whole within this time, also the
    # first one on a new connection; a body may pause at most http_body_timeout_seconds
    # between reads and must be complete within http_body_deadline_seconds.
    http_header_timeout_seconds: float = Field(default=15.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    http_body_deadline_seconds: float = Field(default=60.0, gt=0)
    http_keep_alive_timeout_seconds: float = Field(default=5.0, gt=0)
    http_max_head_bytes: int = Field(default=16 * 1024, ge=1024)
    http_max_headers: int = Field(default=100, ge=8)
    # Lingering close after an early answer (413, 431, 408): unread input is read and
    # discarded for at most this long / this much, so the client reads the answer.
    http_linger_seconds: float = Field(default=5.0, ge=0)
    http_linger_bytes: int = Field(default=16 * 1024 * 1024, ge=0)

    # --- realtime ------------------------------------------------------------------------
    events_retention_seconds: int = Field(default=24 * 3600, ge=1)
    ws_auth_timeout_seconds: float = Field(default=5.0, gt=0)
    ws_queue_size: int = Field(default=1000, ge=1)
    ws_heartbeat_seconds: float = Field(default=20.0, gt=0)
    sse_ticket_ttl_seconds: int = Field(default=30, ge=1)
    # The relay's safety-net poll of the outbox (the bus wakes it at once normally).
    events_poll_seconds: float = Field(default=1.0, gt=0)
    events_purge_interval_seconds: float = Field(default=300.0, gt=0)

    # --- backups (SPEC §12) --------------------------------------------------------------
    # age public keys (age1…), comma-separated: an instance can write backups it cannot read.
    backup_recipients: Annotated[list[str], NoDecode] = Field(default_factory=list)
    backup_target: str = ""  # a directory or s3://bucket/prefix; empty: <data_dir>/backups
    backup_schedule: int | None = Field(default=None, ge=1)  # interval seconds; None: off
    backup_keep: int = Field(default=7, ge=1)
    backup_s3_endpoint_url: str | None = None  # for S3-compatible stores other than AWS
    backup_s3_region: str | None = None

    # --- GraphQL (SPEC §8) -----------------------------------------------------------------
    # Introspection and GraphiQL: on outside production unless set; in production only if true.
    graphql_introspection: bool | None = None
    # Each connection field costs its `first` times the `first` of the connections around it.
    graphql_max_cost: int = Field(default=1000, ge=1)
    # Trusted documents (production only): a JSON file {"<sha256 hex>": "<document>"}; when
    # set, only those documents run (docs/graphql.md). Ignored outside production.
    graphql_trusted_documents: Path | None = None

    # --- jobs and webhooks (SPEC §10, docs/adr/0015-job-engine.md) -------------------------
    # Start the in-process job worker with the app (every instance takes work).
    jobs_enabled: bool = True
    # The engine's own store; by default beside KEEL_DATABASE_URL (schema `dbos` on
    # PostgreSQL, a `keel-jobs.db` file next to the SQLite database).
    jobs_database_url: str | None = None
    jobs_poll_seconds: float = Field(default=1.0, gt=0)
    jobs_worker_concurrency: int = Field(default=20, ge=1)
    # An instance silent for this long is presumed dead; its running jobs are taken over.
    jobs_executor_timeout_seconds: float = Field(default=60.0, gt=0)
    webhook_retry_schedule: str = "5,300,1800,7200,18000,36000,36000"
    webhook_disable_after_seconds: int = Field(default=5 * 24 * 3600, ge=1)
    webhook_allow_private_targets: bool = False
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, values: dict[str, object]) -> dict[str, object]:
        for key in (
            "cors_origins",
            "trusted_proxies",
            "backup_recipients",
            "oidc_redirect_allowlist",
        ):
            raw = values.get(key)
            if isinstance(raw, str):
                values[key] = [part.strip() for part in raw.split(",") if part.strip()]
        providers = values.get("oidc_providers")
        if isinstance(providers, str):
            values["oidc_providers"] = _oidc_providers(providers, values)
        return values

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
            raise ValueError("KEEL_PUBLIC_URL must be an absolute http(s) URL")
        return value

    @field_validator("oidc_redirect_allowlist")
    @classmethod
    def _check_redirect_allowlist(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            if not re.fullmatch(r"https?://[^/?#\s@]+(/[^#\s]*)?", entry):
                raise ValueError(
                    f"KEEL_OIDC_REDIRECT_ALLOWLIST: {entry!r} is not an absolute http(s) URI "
                    "without a fragment"
                )
        return entries

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.env is not Env.production:
            return self
        secret = self.secret_key
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in WEAK_SECRETS:
            raise ConfigurationError(
                "KEEL_SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters in production "
                '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        if self.is_sqlite and not self.allow_sqlite_in_production:
            raise ConfigurationError(
                "production mode needs KEEL_DATABASE_URL pointing at PostgreSQL; "
                "set KEEL_ALLOW_SQLITE_IN_PRODUCTION=true to run on SQLite deliberately"
            )
        if "*" in self.cors_origins:
            raise ConfigurationError("KEEL_CORS_ORIGINS may not contain '*' in production")
        if self.jwt_algorithm != "HS256" and self.jwt_private_key_file is None:
            # A generated key is per instance: tokens signed by one would fail on the others.
            raise ConfigurationError(
                f"KEEL_JWT_ALGORITHM={self.jwt_algorithm} in production needs "
                "KEEL_JWT_PRIVATE_KEY_FILE (the same key on every instance)"
            )
        if self.oidc_providers and not self.public_url:
            raise ConfigurationError(
                "KEEL_OIDC_PROVIDERS needs KEEL_PUBLIC_URL in production: the callback URL "
                "registered with each provider is built from it"
            )
        for name, provider in self.oidc_providers.items():
            if not provider.issuer.startswith("https://"):
                raise ConfigurationError(
                    f"KEEL_OIDC_{name.upper().replace('-', '_')}_ISSUER must be https in production"
                )
        if self.backup_schedule and not self.backup_recipients:
            raise ConfigurationError(
                "KEEL_BACKUP_SCHEDULE needs KEEL_BACKUP_RECIPIENTS in production: "
                "backups are written encrypted with age or not at all"
            )
        return self

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: str) -> str:
        if value and not value.startswith(("smtp://", "smtps://")):
            raise ValueError("KEEL_SMTP_URL must start with smtp:// or smtps://")
        return value

    @field_validator("webhook_retry_schedule", "mail_retry_schedule")
    @classmethod
    def _check_retry_schedule(cls, value: str, info: ValidationInfo) -> str:
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts or not all(part.replace(".", "", 1).isdigit() for part in parts):
            name = f"KEEL_{(info.field_name or '').upper()}"
            raise ValueError(f"{name} must be comma-separated seconds")
        return ",".join(parts)

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """Seconds to wait before each retry of a failed delivery (SPEC §10)."""
        return tuple(float(part) for part in self.webhook_retry_schedule.split(","))

    @property
    def mail_base_url(self) -> str:
        """Where mail links point: KEEL_PUBLIC_URL, else this instance on localhost."""
        return self.public_url or f"http://localhost:{self.port}"

    @property
    def mail_retry_delays(self) -> tuple[float, ...]:
        """Seconds to wait before each retry of a mail the SMTP server did not take."""
        return tuple(float(part) for part in self.mail_retry_schedule.split(","))

    @property
    def effective_jobs_database_url(self) -> str:
        """The job engine's store URL, in the synchronous driver form the engine uses."""
        if self.jobs_database_url:
            return self.jobs_database_url
        url = self.effective_database_url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            stem = path[:-3] if path.endswith(".db") else path
            return f"sqlite:///{stem}-jobs.db"
        return "postgresql+psycopg://" + url.split("://", 1)[1]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'keel.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @cached_property
    def signing_secret(self) -> str:
        """The secret that signs tokens and derives keys.

        From KEEL_SECRET_KEY when set; otherwise (development and test only) generated once
        into <data_dir>/secret.key with mode 0600, so restarts keep sessions valid.
        """
        if self.secret_key:
            return self.secret_key
        if self.env is Env.production:  # pragma: no cover - refused by the validator
            raise ConfigurationError("KEEL_SECRET_KEY is required in production")
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker won the race; use its secret
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return value


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
