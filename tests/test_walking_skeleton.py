"""One slice through every layer: register (command) -> projector -> read model -> query."""

from __future__ import annotations

import uuid

import grpc
import pytest

from learnflow.v1 import access_pb2, identity_pb2, identity_pb2_grpc
from tests.commands_support import Pg
from tests.support import PASSWORD, Caller, field_violations


async def test_registered_user_is_readable_with_the_consistency_token(
    channel: grpc.aio.Channel,
) -> None:
    caller = await Caller.register(channel, name="Grace Hopper")
    profiles = identity_pb2_grpc.ProfileServiceStub(channel)
    reply = await profiles.GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata(caller.consistency_token)
    )
    assert reply.user.id == caller.user_id
    assert reply.user.display_name == "Grace Hopper"
    assert reply.user.email == caller.user.email


async def test_email_is_normalised_and_unique_case_insensitively(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub, pg: Pg
) -> None:
    local = f"Mixed.{uuid.uuid4().hex[:8]}"
    first = await identity.RegisterUser(
        identity_pb2.RegisterUserRequest(
            email=f"{local}@Example.COM", password=PASSWORD, display_name="M"
        )
    )
    # The same email in other case: answered like a new registration (nothing tells that
    # the email is taken), and no second account appears.
    second = await identity.RegisterUser(
        identity_pb2.RegisterUserRequest(
            email=f"{local.upper()}@example.com", password="another-password", display_name="N"
        )
    )
    assert not first.HasField("user") and not second.HasField("user")
    assert first.consistency_token and second.consistency_token
    rows = await pg.rows(
        "SELECT email, display_name FROM users WHERE lower(email) = %s",
        f"{local.lower()}@example.com",
    )
    assert rows == [(f"{local.lower()}@example.com", "M")]
    # The first password still logs in; the second never does.
    ok = await identity.CreateSession(
        identity_pb2.CreateSessionRequest(email=f"{local}@example.com", password=PASSWORD)
    )
    assert ok.access_token
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await identity.CreateSession(
            identity_pb2.CreateSessionRequest(
                email=f"{local}@example.com", password="another-password"
            )
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_invalid_registration_names_every_bad_field(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await identity.RegisterUser(
            identity_pb2.RegisterUserRequest(email="nope", password="short", display_name="")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {"email", "password", "display_name"}


async def test_password_over_72_bytes_is_refused_not_truncated(
    identity: identity_pb2_grpc.IdentityServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await identity.RegisterUser(
            identity_pb2.RegisterUserRequest(
                email=f"long-{uuid.uuid4().hex[:8]}@example.com",
                password="é" * 37,  # 74 bytes of UTF-8, 37 characters
                display_name="Long",
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "72" in field_violations(err.value)["password"]


async def test_query_without_token_is_unauthenticated(channel: grpc.aio.Channel) -> None:
    profiles = identity_pb2_grpc.ProfileServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.GetCurrentUser(identity_pb2.GetCurrentUserRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_admin_changes_a_role_and_the_old_token_stops_working(
    channel: grpc.aio.Channel, admin: Caller
) -> None:
    student = await Caller.register(channel)
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    changed = await stub.SetUserRole(
        identity_pb2.SetUserRoleRequest(user_id=student.user_id, role=access_pb2.ROLE_INSTRUCTOR),
        metadata=admin.metadata(),
    )
    assert changed.user.role == 2
    profiles = identity_pb2_grpc.ProfileServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await profiles.GetCurrentUser(
            identity_pb2.GetCurrentUserRequest(), metadata=student.metadata()
        )
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_students_may_not_change_roles(channel: grpc.aio.Channel, caller: Caller) -> None:
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SetUserRole(
            identity_pb2.SetUserRoleRequest(user_id=caller.user_id, role=access_pb2.ROLE_ADMIN),
            metadata=caller.metadata(),
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
