"""One typed settings object, read from `LEARNFLOW_*` environment variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, get_type_hints

REPO_ROOT = Path(__file__).resolve().parent.parent


PREFIX = "LEARNFLOW_"
ENVIRONMENTS = ("development", "test", "production")
TRACING_MODES = ("off", "otlp")
NOT_RATES = frozenset({"rate_limit_storage", "rate_limit_key_prefix"})
SMTP_SECURITY = ("none", "starttls", "tls")


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _parse(name: str, kind: Any, raw: str) -> Any:
    """`raw` (the text of LEARNFLOW_<NAME>) as a value of the field's type."""
    if kind is int or kind is float:
        try:
            return kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise SystemExit(f"{PREFIX}{name} must be {noun}, got {raw!r}") from None
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered not in _BOOLEANS:
            raise SystemExit(f"{PREFIX}{name} must be true or false, got {raw!r}")
        return _BOOLEANS[lowered]
    if kind is Path:
        return Path(raw)
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


@dataclass(frozen=True)
class Settings:
    # `development`, `test` or `production` (production: no demo data, no generated keys).
    env: str = "development"
    # host:port the gRPC server listens on (port 0: any free port).
    grpc_listen: str = "127.0.0.1:50051"
    # The server runs as `learnflow_app` (no ownership, append-only audit/outbox: migration
    # 0003); migrations run as the schema's owner.
    postgres_url: str = "postgresql+psycopg://learnflow_app@127.0.0.1:55432/learnflow"
    postgres_migration_url: str = "postgresql+psycopg://postgres@127.0.0.1:55432/learnflow"
    # The read store: MongoDB in production, FerretDB locally (when set, `make up` starts none).
    mongo_url: str = "mongodb://127.0.0.1:57017/"
    # Name prefix of the read-model databases (`<name>_g<generation>`, `<name>_meta`).
    mongo_database: str = "learnflow"
    # Where local services, keys and tools live.
    state_dir: Path = REPO_ROOT / ".state"
    # Access tokens: EdDSA JWTs. Keys are PEM files in `signing_keys_dir`; the newest signs,
    # all verify (rotation). In development a key is generated on first run.
    signing_keys_dir: Path = REPO_ROOT / ".state" / "keys"
    # `iss` and `aud` of the access tokens issued and required.
    jwt_issuer: str = "https://learnflow.local"
    jwt_audience: str = "learnflow-api"
    # Lifetimes in seconds: access tokens (short), refresh tokens (rotated on use).
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    # Name of the cookie that carries the refresh token to browsers that ask for it
    # (REFRESH_TOKEN_DELIVERY_COOKIE); the gateway must forward it (FORWARD_COOKIES).
    session_cookie_name: str = "lf_refresh"
    # Whether that cookie is `Secure` (HTTPS only; browsers make an exception for localhost).
    session_cookie_secure: bool = True
    # Clock skew tolerated when checking token times, in seconds.
    jwt_leeway_s: int = 30
    # bcrypt cost of password hashes (at least 12 in production).
    bcrypt_rounds: int = 12
    # Read-your-writes: how long a query waits for the read model to reach a token.
    consistency_wait_s: float = 5.0
    # How many queries may wait for their consistency token at once, per client and in all.
    consistency_waiters_per_client: int = 16
    consistency_waiters_total: int = 1000
    # Seconds shared HTTP caches may keep a public catalog answer (a course, a certificate)
    # given to an anonymous caller without a consistency token (`Cache-Control: public`);
    # 0: every answer is `private, no-cache`.
    public_cache_max_age_s: int = 5
    # Read-model documents cached per process (0: none), and how long an entry may serve a
    # read without a consistency token when another process's projector may have changed it.
    # Memory: ~11 MiB per 1,000 course documents, plus ~6 MiB for the GetCourse replies kept
    # with them (bench/cache_memory.py): ~170 MiB at the default.
    read_cache_docs: int = 10_000
    read_cache_ttl_s: float = 1.0
    # List-query results (catalog pages) cached per process, least recently used out (0: none).
    # Same freshness rules and TTL as the read cache; an entry holds one page (up to
    # page_size + 1 course documents, without outlines) and, for a first page, its total.
    query_cache_entries: int = 500
    # The projector wakes on NOTIFY; it also polls the event log this often, in seconds.
    projector_poll_s: float = 1.0
    # Rate limits per method class, in the `limits` library's notation.
    rate_limit_read: str = "600/minute"
    rate_limit_write: str = "120/minute"
    rate_limit_auth: str = "20/minute"
    # FAILED logins only (a correct password never counts): per account from any address,
    # large so that locking someone out is not cheap, and per (account, client address).
    rate_limit_login_per_account: str = "100/hour"
    rate_limit_login_per_account_address: str = "10/minute"
    # Graded quiz attempts per learner and quiz lesson (besides the quiz's max_attempts).
    rate_limit_quiz_attempts: str = "10/minute"
    # `memory://` (one process) or `redis://...` (one budget across processes; fails closed).
    rate_limit_storage: str = "memory://"
    # Namespaces the shared counters, so deployments (or test runs) sharing a Redis don't mix.
    rate_limit_key_prefix: str = "learnflow"
    # Server streams (progress watch): open at once per user, longest life, how often each
    # re-checks that its session still holds (logout everywhere, disabled, token expiry).
    streams_per_user: int = 4
    stream_max_duration_s: float = 3600.0
    stream_recheck_s: float = 0.5
    stream_heartbeat_s: float = 15.0  # the current state sent again after this much silence
    # Authorization refusals audited one by one per client and minute; the rest aggregated.
    denials_audited_per_minute: int = 10
    # Health and reflection: rate-limited per client address; concurrent Health/Watch streams
    # are capped per client address and in total.
    rate_limit_infra: str = "600/minute"
    health_watch_max_per_client: int = 4
    health_watch_max_total: int = 100
    # Proxies (CIDR blocks) whose X-Forwarded-For is believed: by default the local gateway.
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    # Share (0..1) of fast successful RPCs that get an access log line; failures and calls
    # slower than access_log_slow_ms always do (metrics count every call).
    access_log_sample: float = 0.01
    access_log_slow_ms: float = 250.0
    # Python logging level of the JSON log lines.
    log_level: str = "INFO"
    # Largest request message the gRPC server accepts: the gateway's body limit (1 MiB).
    max_message_bytes: int = 1024 * 1024
    # host:port of the Prometheus metrics endpoint (`/metrics`); empty: none. With
    # `serve --workers N`, worker i listens on port + i.
    metrics_listen: str = "127.0.0.1:9464"
    # Base URL of the web app, for the links in mail (`/reset-password?token=…`,
    # `/verify-email?token=…`).
    public_url: str = "http://127.0.0.1:8080"
    # Lifetimes in seconds of a password-reset link and of an email-verification link.
    password_reset_ttl_s: int = 1800
    email_verification_ttl_s: int = 48 * 3600
    # Password-reset requests per email address, known or not (refused beyond, with a retry
    # delay), and per account (beyond it, requests answer alike but mail nothing).
    rate_limit_password_reset_per_email: str = "5/hour"
    rate_limit_password_reset_per_account: str = "3/hour"
    # Verification mails per account (SendVerificationEmail refuses beyond), and notices
    # "someone tried to register with your address" per address (beyond: none are mailed).
    rate_limit_verification_email: str = "5/hour"
    rate_limit_registration_notice: str = "3/hour"
    # Outgoing mail (SMTP). An empty host turns sending off: mail stays queued in the outbox
    # (`learnflow doctor` says so). Security: `none`, `starttls` or `tls` (implicit TLS).
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    # SMTP login (both empty: none). The password is never logged.
    smtp_username: str = ""
    smtp_password: str = dataclasses.field(default="", repr=False)
    # Sender address of every mail (the domain also names the Message-IDs).
    smtp_from: str = "LearnFlow <no-reply@learnflow.local>"
    # Seconds allowed for connecting to the SMTP server and for each of its answers.
    smtp_timeout_s: float = 10.0
    # The mail sender: how often it looks for due jobs (seconds), how many delivery attempts
    # a job gets before it is marked failed, and the backoff after a failed attempt (the
    # first delay in seconds, doubled per attempt up to the maximum).
    mail_poll_s: float = 1.0
    mail_max_attempts: int = 8
    mail_backoff_s: float = 30.0
    mail_backoff_max_s: float = 3600.0
    # Development mail sink (`learnflow mail serve`, started by `make up`): where it listens,
    # and the directory its messages are kept in (default: `mail` in the state directory).
    mail_sink_listen: str = "127.0.0.1:8025"
    mail_dir: Path = REPO_ROOT / ".state" / "mail"
    # OpenTelemetry tracing: `off` (nothing installed, no cost) or `otlp` (spans exported over
    # OTLP/gRPC). The standard OTEL_* variables apply where the SDK reads them.
    tracing: str = "off"
    # The OTLP collector (e.g. `http://otel-collector:4317`); empty: OTEL_EXPORTER_OTLP_ENDPOINT,
    # else `localhost:4317`.
    otlp_endpoint: str = ""
    # Share (0..1) of new traces recorded; a caller's sampled flag is followed (parent-based).
    # OTEL_TRACES_SAMPLER, when set, replaces this.
    trace_sample_ratio: float = 1.0
    # `service.name` of the spans (OTEL_SERVICE_NAME, when set, wins).
    trace_service_name: str = "learnflow-server"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def problems(self) -> list[str]:
        """What is wrong with these settings, one sentence each (empty: nothing). The CLI
        refuses to start on any of them; `learnflow doctor` lists them all."""
        from limits import parse  # the rate-limit notation's own parser

        found = []
        if self.env not in ENVIRONMENTS:
            found.append(
                f"{PREFIX}ENV={self.env!r} is not one of {', '.join(ENVIRONMENTS)} "
                "(an unknown value would run with development defaults, demo accounts included)"
            )
        for field in fields(self):
            if field.name.startswith("rate_limit_") and field.name not in NOT_RATES:
                value = getattr(self, field.name)
                try:
                    parse(value)
                except ValueError:
                    found.append(
                        f"{PREFIX}{field.name.upper()}={value!r} is not a rate such as '20/minute'"
                    )
        if self.smtp_security not in SMTP_SECURITY:
            found.append(
                f"{PREFIX}SMTP_SECURITY={self.smtp_security!r} is not one of "
                f"{', '.join(SMTP_SECURITY)}"
            )
        if bool(self.smtp_username) != bool(self.smtp_password):
            found.append(f"{PREFIX}SMTP_USERNAME and {PREFIX}SMTP_PASSWORD go together")
        if self.smtp_password and self.smtp_security == "none":
            found.append(
                f"{PREFIX}SMTP_PASSWORD with {PREFIX}SMTP_SECURITY=none would send it in clear"
            )
        if self.mail_max_attempts < 1:
            found.append(f"{PREFIX}MAIL_MAX_ATTEMPTS must be at least 1")
        if not self.public_url.startswith(("http://", "https://")):
            found.append(f"{PREFIX}PUBLIC_URL must be an http(s) URL, got {self.public_url!r}")
        if self.tracing not in TRACING_MODES:
            found.append(
                f"{PREFIX}TRACING={self.tracing!r} is not one of {', '.join(TRACING_MODES)}"
            )
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            found.append(f"{PREFIX}TRACE_SAMPLE_RATIO must be between 0 and 1")
        if self.is_production and self.bcrypt_rounds < 12:
            found.append(f"{PREFIX}BCRYPT_ROUNDS must be at least 12 in production")
        return found

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every field from `LEARNFLOW_<FIELD NAME>` when set, else its default above."""
        env = os.environ if environ is None else environ
        types = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(PREFIX + field.name.upper())
            if raw is not None:
                values[field.name] = _parse(field.name.upper(), types[field.name], raw)
        # Defaults that follow other settings: keys live in the state directory, and given
        # only LEARNFLOW_POSTGRES_URL (one role does all), migrations use it too.
        if "state_dir" in values and "signing_keys_dir" not in values:
            values["signing_keys_dir"] = values["state_dir"] / "keys"
        if "state_dir" in values and "mail_dir" not in values:
            values["mail_dir"] = values["state_dir"] / "mail"
        if "postgres_url" in values and "postgres_migration_url" not in values:
            values["postgres_migration_url"] = values["postgres_url"]
        for url in ("postgres_url", "postgres_migration_url"):
            if url in values:
                values[url] = _sqlalchemy_url(values[url])
        return cls(**values)


def _sqlalchemy_url(url: str) -> str:
    """Accept plain libpq URLs and select the psycopg 3 driver for SQLAlchemy."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
