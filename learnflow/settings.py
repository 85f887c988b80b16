"""One typed settings object, read from `LEARNFLOW_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(f"LEARNFLOW_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"LEARNFLOW_{name} must be an integer, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"LEARNFLOW_{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    grpc_listen: str = "127.0.0.1:50051"
    # The server runs as `learnflow_app` (no ownership, append-only audit/outbox: migration
    # 0003); migrations run as the schema's owner.
    postgres_url: str = "postgresql+psycopg://learnflow_app@127.0.0.1:55432/learnflow"
    postgres_migration_url: str = "postgresql+psycopg://postgres@127.0.0.1:55432/learnflow"
    mongo_url: str = "mongodb://127.0.0.1:57017/"
    mongo_database: str = "learnflow"
    state_dir: Path = REPO_ROOT / ".state"
    # Access tokens: EdDSA JWTs. Keys are PEM files in `signing_keys_dir`; the newest signs,
    # all verify (rotation). In development a key is generated on first run.
    signing_keys_dir: Path = REPO_ROOT / ".state" / "keys"
    jwt_issuer: str = "https://learnflow.local"
    jwt_audience: str = "learnflow-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    jwt_leeway_s: int = 30
    bcrypt_rounds: int = 12
    # Read-your-writes: how long a query waits for the read model to reach a token.
    consistency_wait_s: float = 5.0
    projector_poll_s: float = 1.0
    # Rate limits per method class, in the `limits` library's notation.
    rate_limit_read: str = "600/minute"
    rate_limit_write: str = "120/minute"
    rate_limit_auth: str = "20/minute"
    rate_limit_login_per_account: str = "10/minute"
    rate_limit_storage: str = "memory://"
    # Namespaces the shared counters, so deployments (or test runs) sharing a Redis don't mix.
    rate_limit_key_prefix: str = "learnflow"
    log_level: str = "INFO"
    # Largest request message the gRPC server accepts: the gateway's body limit (1 MiB).
    max_message_bytes: int = 1024 * 1024

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls) -> Settings:
        state = Path(_env("STATE_DIR", str(REPO_ROOT / ".state")))
        postgres_url = _env("POSTGRES_URL", "postgresql://learnflow_app@127.0.0.1:55432/learnflow")
        # Given only LEARNFLOW_POSTGRES_URL (one role does all), migrations use it too.
        migration_default = (
            postgres_url
            if "LEARNFLOW_POSTGRES_URL" in os.environ
            else "postgresql://postgres@127.0.0.1:55432/learnflow"
        )
        return cls(
            env=_env("ENV", "development"),
            grpc_listen=_env("GRPC_LISTEN", "127.0.0.1:50051"),
            postgres_url=_sqlalchemy_url(postgres_url),
            postgres_migration_url=_sqlalchemy_url(
                _env("POSTGRES_MIGRATION_URL", migration_default)
            ),
            mongo_url=_env("MONGO_URL", "mongodb://127.0.0.1:57017/"),
            mongo_database=_env("MONGO_DATABASE", "learnflow"),
            state_dir=state,
            signing_keys_dir=Path(_env("SIGNING_KEYS_DIR", str(state / "keys"))),
            jwt_issuer=_env("JWT_ISSUER", "https://learnflow.local"),
            jwt_audience=_env("JWT_AUDIENCE", "learnflow-api"),
            access_token_ttl_s=_env_int("ACCESS_TOKEN_TTL_S", 900),
            refresh_token_ttl_s=_env_int("REFRESH_TOKEN_TTL_S", 30 * 24 * 3600),
            jwt_leeway_s=_env_int("JWT_LEEWAY_S", 30),
            bcrypt_rounds=_env_int("BCRYPT_ROUNDS", 12),
            consistency_wait_s=_env_float("CONSISTENCY_WAIT_S", 5.0),
            projector_poll_s=_env_float("PROJECTOR_POLL_S", 1.0),
            rate_limit_read=_env("RATE_LIMIT_READ", "600/minute"),
            rate_limit_write=_env("RATE_LIMIT_WRITE", "120/minute"),
            rate_limit_auth=_env("RATE_LIMIT_AUTH", "20/minute"),
            rate_limit_login_per_account=_env("RATE_LIMIT_LOGIN_PER_ACCOUNT", "10/minute"),
            rate_limit_storage=_env("RATE_LIMIT_STORAGE", "memory://"),
            rate_limit_key_prefix=_env("RATE_LIMIT_KEY_PREFIX", "learnflow"),
            log_level=_env("LOG_LEVEL", "INFO"),
            max_message_bytes=_env_int("MAX_MESSAGE_BYTES", 1024 * 1024),
        )


def _sqlalchemy_url(url: str) -> str:
    """Accept plain libpq URLs and select the psycopg 3 driver for SQLAlchemy."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
