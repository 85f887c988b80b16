"""Shared fixtures: a fresh PostgreSQL database and MongoDB database per test session, on the
real servers started by `make up` (or those LEARNFLOW_POSTGRES_URL / LEARNFLOW_MONGO_URL name),
and a real grpc.aio server on a free loopback port."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from pymongo import AsyncMongoClient

from learnflow.migrations import upgrade_to_head
from learnflow.projections.store import ReadStore
from learnflow.server import Backend, build
from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.commands_support import Pg
from tests.support import Caller

pytest_plugins = ["tests.index_coverage"]

PG_PORT = os.environ.get("LEARNFLOW_PG_PORT", "55432")
MONGO_PORT = os.environ.get("LEARNFLOW_MONGO_PORT", "57017")
PG_ADMIN_URL = os.environ.get(
    "LEARNFLOW_POSTGRES_URL", f"postgresql://postgres@127.0.0.1:{PG_PORT}/postgres"
)
MONGO_URL = os.environ.get("LEARNFLOW_MONGO_URL", f"mongodb://127.0.0.1:{MONGO_PORT}/")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A brand-new database with the migrations applied, dropped at the end."""
    name = f"learnflow_test_{os.getpid()}"
    admin = _with_database(PG_ADMIN_URL, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_database(PG_ADMIN_URL, name).replace("postgresql://", "postgresql+psycopg://", 1)
    upgrade_to_head(url)
    yield url  # the owner's: tests read and write behind the server's back with it
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def app_postgres_url(postgres_url: str) -> str:
    """The same database as the server sees it: as `learnflow_app` (migration 0003)."""
    scheme, _, rest = postgres_url.partition("://")
    _, _, host_and_path = rest.rpartition("@")
    return f"{scheme}://learnflow_app@{host_and_path}"


@pytest.fixture(scope="session")
def settings(
    postgres_url: str, app_postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    keys: Path = tmp_path_factory.mktemp("keys")
    return dataclasses.replace(
        Settings(),
        env="test",
        grpc_listen="127.0.0.1:0",
        postgres_url=app_postgres_url,
        postgres_migration_url=postgres_url,
        mongo_url=MONGO_URL,
        mongo_database=f"lftest_{uuid.uuid4().hex[:8]}",
        signing_keys_dir=keys,
        state_dir=keys.parent,
        # Cost 4 keeps the suite fast; production's default of 12 has its own test.
        bcrypt_rounds=4,
        projector_poll_s=0.2,
        rate_limit_read="100000/minute",
        rate_limit_write="100000/minute",
        rate_limit_auth="100000/minute",
        rate_limit_login_per_account="100000/minute",
        # Every refusal audited one by one (the budget has its own test).
        denials_audited_per_minute=100000,
        rate_limit_infra="100000/minute",
        rate_limit_login_per_account_address="100000/minute",
        rate_limit_quiz_attempts="100000/minute",
    )


@pytest.fixture(scope="session")
async def backend(settings: Settings) -> AsyncIterator[Backend]:
    server = await build(settings)
    yield server
    await server.close(grace_s=1)
    # Drop exactly the databases this session made: the meta database and every generation up
    # to the active one (and a rebuild's next). Not `list_database_names`: FerretDB's SQLite
    # backend sizes every database to answer it, which is slow and can stall on a busy one.
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
    store = ReadStore(client, settings.mongo_database)
    last = await store.active_generation()
    for generation in range(1, last + 2):
        await client.drop_database(store.database(generation).name)
    await client.drop_database(f"{settings.mongo_database}_meta")
    await client.close()


@pytest.fixture(scope="session")
async def channel(backend: Backend) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{backend.port}") as ch:
        yield ch


@pytest.fixture
async def caller(channel: grpc.aio.Channel) -> Caller:
    """A freshly registered, logged-in student."""
    return await Caller.register(channel)


@pytest.fixture
async def admin(channel: grpc.aio.Channel, postgres_url: str) -> Caller:
    return await Caller.with_role(channel, postgres_url, "admin", name="Admin")


@pytest.fixture
async def instructor(channel: grpc.aio.Channel, postgres_url: str) -> Caller:
    return await Caller.with_role(channel, postgres_url, "instructor", name="Instructor")


@pytest.fixture(scope="session")
def identity(channel: grpc.aio.Channel) -> identity_pb2_grpc.IdentityServiceAsyncStub:
    return identity_pb2_grpc.IdentityServiceStub(channel)


__all__ = ["identity_pb2"]


@pytest.fixture
def pg(postgres_url: str) -> Pg:
    """Direct SQL on the session's database, as the schema owner."""
    return Pg(postgres_url)
