"""Demo data for `make run`: three accounts and a small published catalog.

Loaded through the command handlers themselves, in-process, so every row comes with its
audit record and event and the read models are projected as for any other write.
Safe to repeat: each step uses a fixed request id or tolerates what already exists.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from learnflow.commands.identity import IdentityCommands
from learnflow.context import CallContext, Principal, reset_call, set_call
from learnflow.security.passwords import PasswordHasher
from learnflow.security.rate_limits import RateLimiter
from learnflow.security.tokens import TokenService, load_keys
from learnflow.settings import Settings
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database
from learnflow.v1 import access_pb2, identity_pb2

ACCOUNTS = [
    ("admin@learnflow.dev", "admin-demo-pass", "Ada Admin", access_pb2.ROLE_ADMIN),
    ("instructor@learnflow.dev", "teach-demo-pass", "Ivan Instructor", access_pb2.ROLE_INSTRUCTOR),
    ("student@learnflow.dev", "learn-demo-pass", "Sam Student", access_pb2.ROLE_STUDENT),
]


async def _user_id(db: Database, email: str) -> uuid.UUID | None:
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                select(tables.users.c.id).where(func.lower(tables.users.c.email) == email)
            )
        ).first()
    return uuid.UUID(str(row.id)) if row is not None else None


async def load_demo_data(settings: Settings) -> str:
    if settings.is_production:
        raise SystemExit("demo data is refused when LEARNFLOW_ENV=production")
    db = Database.connect(settings.postgres_url, pool_size=2)
    keys = load_keys(settings.signing_keys_dir, generate_if_empty=True)
    tokens = TokenService(keys, settings.jwt_issuer, settings.jwt_audience, 900, 30)
    identity = IdentityCommands(
        db,
        PasswordHasher(settings.bcrypt_rounds),
        tokens,
        3600,
        RateLimiter(settings),
        settings=settings,
    )
    token = set_call(CallContext(method="demo", request_id="demo-data", client_address="local"))
    try:
        ids: dict[str, uuid.UUID] = {}
        for email, password, name, _role in ACCOUNTS:
            # Registering an existing email succeeds too (and mails its owner a notice), so
            # look first: loading the demo again mails nobody.
            known = await _user_id(db, email)
            if known is None:
                await identity.RegisterUser(
                    identity_pb2.RegisterUserRequest(
                        email=email, password=password, display_name=name
                    )
                )
                known = await _user_id(db, email)
            assert known is not None
            ids[email] = known
        admin = Principal(ids[ACCOUNTS[0][0]], "admin")
        set_call(CallContext(method="demo", request_id="demo-data", principal=admin))
        for email, _password, _name, role in ACCOUNTS:
            if role != access_pb2.ROLE_STUDENT:
                await identity.SetUserRole(
                    identity_pb2.SetUserRoleRequest(
                        user_id=str(ids[email]), role=role, request_id=f"demo-role-{email}"
                    )
                )
        from learnflow.demo_catalog import load_catalog

        courses = await load_catalog(db, ids[ACCOUNTS[1][0]])
    finally:
        reset_call(token)
        await db.close()
    return f"demo data loaded: {len(ACCOUNTS)} accounts, {courses} courses"
