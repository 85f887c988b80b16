"""Settings from LEARNFLOW_* variables: parsed by each field's type, defaults that follow."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from learnflow.settings import REPO_ROOT, Settings


def test_no_variables_give_the_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.state_dir == REPO_ROOT / ".state"
    assert settings.signing_keys_dir == REPO_ROOT / ".state" / "keys"
    assert settings.is_production is False


def test_each_field_is_parsed_by_its_type() -> None:
    settings = Settings.from_env(
        {
            "LEARNFLOW_ENV": "production",
            "LEARNFLOW_ACCESS_TOKEN_TTL_S": "60",
            "LEARNFLOW_CONSISTENCY_WAIT_S": "0.25",
            "LEARNFLOW_PROJECTOR_POLL_S": "2",
            "LEARNFLOW_SIGNING_KEYS_DIR": "/run/keys",
            "LEARNFLOW_RATE_LIMIT_READ": "5/second",
        }
    )
    assert settings.is_production is True
    assert settings.access_token_ttl_s == 60
    assert isinstance(settings.access_token_ttl_s, int)
    assert settings.consistency_wait_s == 0.25
    assert settings.projector_poll_s == 2.0
    assert isinstance(settings.projector_poll_s, float)
    assert settings.signing_keys_dir == Path("/run/keys")
    assert settings.rate_limit_read == "5/second"


def test_variables_of_other_programs_and_unknown_names_are_ignored() -> None:
    settings = Settings.from_env(
        {"GRPC_LISTEN": "0.0.0.0:1", "LEARNFLOW_NO_SUCH_FIELD": "x", "learnflow_env": "prod"}
    )
    assert settings == Settings()


def test_an_empty_text_value_is_kept() -> None:
    assert Settings.from_env({"LEARNFLOW_RATE_LIMIT_KEY_PREFIX": ""}).rate_limit_key_prefix == ""


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("BCRYPT_ROUNDS", "twelve", "LEARNFLOW_BCRYPT_ROUNDS must be an integer, got 'twelve'"),
        ("BCRYPT_ROUNDS", "12.5", "LEARNFLOW_BCRYPT_ROUNDS must be an integer, got '12.5'"),
        ("JWT_LEEWAY_S", "", "LEARNFLOW_JWT_LEEWAY_S must be an integer, got ''"),
        ("PROJECTOR_POLL_S", "1s", "LEARNFLOW_PROJECTOR_POLL_S must be a number, got '1s'"),
    ],
)
def test_a_bad_number_stops_the_program_naming_the_variable(
    name: str, raw: str, message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        Settings.from_env({f"LEARNFLOW_{name}": raw})
    assert str(caught.value) == message


def test_the_keys_follow_the_state_directory_unless_set() -> None:
    moved = Settings.from_env({"LEARNFLOW_STATE_DIR": "/var/lib/lf"})
    assert moved.state_dir == Path("/var/lib/lf")
    assert moved.signing_keys_dir == Path("/var/lib/lf/keys")
    both = Settings.from_env({"LEARNFLOW_STATE_DIR": "/a", "LEARNFLOW_SIGNING_KEYS_DIR": "/b"})
    assert both.signing_keys_dir == Path("/b")


def test_one_postgres_url_serves_migrations_too_with_the_psycopg_driver() -> None:
    settings = Settings.from_env({"LEARNFLOW_POSTGRES_URL": "postgres://u@db:5432/lf"})
    assert settings.postgres_url == "postgresql+psycopg://u@db:5432/lf"
    assert settings.postgres_migration_url == "postgresql+psycopg://u@db:5432/lf"


def test_a_separate_migration_url_is_kept() -> None:
    settings = Settings.from_env(
        {
            "LEARNFLOW_POSTGRES_URL": "postgresql://app@db/lf",
            "LEARNFLOW_POSTGRES_MIGRATION_URL": "postgresql://owner@db/lf",
        }
    )
    assert settings.postgres_url == "postgresql+psycopg://app@db/lf"
    assert settings.postgres_migration_url == "postgresql+psycopg://owner@db/lf"


def test_a_url_that_already_names_a_driver_is_left_alone() -> None:
    url = "postgresql+asyncpg://u@db/lf"
    assert Settings.from_env({"LEARNFLOW_POSTGRES_URL": url}).postgres_url == url


def test_without_a_mapping_the_process_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEARNFLOW_GRPC_LISTEN", "127.0.0.1:6000")
    assert Settings.from_env().grpc_listen == "127.0.0.1:6000"


@dataclasses.dataclass(frozen=True)
class WithOrigins(Settings):
    """A list-valued field, to check the generic parsing of `tuple[str, ...]`."""

    allowed_origins: tuple[str, ...] = ()


def origins(environ: dict[str, str]) -> tuple[str, ...]:
    settings = WithOrigins.from_env(environ)
    assert isinstance(settings, WithOrigins)  # from_env builds the class it is called on
    return settings.allowed_origins


def test_a_list_field_is_comma_separated_and_trimmed() -> None:
    assert origins({"LEARNFLOW_ALLOWED_ORIGINS": " https://a , ,https://b,"}) == (
        "https://a",
        "https://b",
    )
    assert origins({"LEARNFLOW_ALLOWED_ORIGINS": ""}) == ()
    assert origins({}) == ()


def test_mail_settings_follow_the_state_directory_and_keep_the_password_out_of_repr() -> None:
    settings = Settings.from_env(
        {"LEARNFLOW_STATE_DIR": "/srv/lf", "LEARNFLOW_SMTP_PASSWORD": "hunter2-secret"}
    )
    assert settings.mail_dir == Path("/srv/lf/mail")
    assert "hunter2" not in repr(settings)
    assert Settings.from_env({}).smtp_host == ""  # mail is off unless a host is named


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"smtp_security": "ssl"}, "LEARNFLOW_SMTP_SECURITY='ssl' is not one of"),
        ({"smtp_username": "u"}, "LEARNFLOW_SMTP_USERNAME and LEARNFLOW_SMTP_PASSWORD go"),
        (
            {"smtp_username": "u", "smtp_password": "hunter2-secret", "smtp_security": "none"},
            "would send it in clear",
        ),
        ({"mail_max_attempts": 0}, "LEARNFLOW_MAIL_MAX_ATTEMPTS must be at least 1"),
        ({"public_url": "learnflow.example.com"}, "LEARNFLOW_PUBLIC_URL must be an http(s) URL"),
        ({"rate_limit_password_reset_per_email": "often"}, "is not a rate"),
    ],
)
def test_bad_mail_settings_are_named(changes: dict[str, object], problem: str) -> None:
    problems = dataclasses.replace(Settings(), **changes).problems()  # type: ignore[arg-type]
    assert any(problem in p for p in problems), problems
    assert "hunter2" not in " ".join(problems)  # a problem names a setting, never its secret
