"""Every RPC of the contract declares its access rule, and the server refuses one that doesn't.

The walk starts from the .proto files on disk and the generated modules, not from the list the
server uses (`API_FILES`), so a new service file forgotten there fails here too.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor, ServiceDescriptor

import learnflow.v1
from learnflow.security.access import (
    RATE_CLASSES,
    MethodRule,
    MissingAccessRule,
    api_services,
    load_rules,
)
from learnflow.settings import REPO_ROOT
from learnflow.v1 import access_pb2

PROTO_DIR = REPO_ROOT / "protos" / "learnflow" / "v1"


def contract_files() -> list[FileDescriptor]:
    """The file descriptor of every generated `learnflow/v1/*_pb2` module."""
    files: list[FileDescriptor] = []
    for module in pkgutil.iter_modules(learnflow.v1.__path__):
        if module.name.endswith("_pb2"):
            pb2 = importlib.import_module(f"learnflow.v1.{module.name}")
            files.append(pb2.DESCRIPTOR)
    return files


def contract_methods() -> list[tuple[ServiceDescriptor, MethodDescriptor]]:
    return [
        (service, method)
        for file in contract_files()
        if file.package == "learnflow.v1"
        for service in file.services_by_name.values()
        for method in service.methods
    ]


def test_every_proto_file_is_generated() -> None:
    on_disk = {f"learnflow/v1/{p.name}" for p in Path(PROTO_DIR).glob("*.proto")}
    generated = {f.name for f in contract_files()}
    assert on_disk, f"no .proto files under {PROTO_DIR}"
    assert on_disk <= generated, f"not generated: {sorted(on_disk - generated)}"


def test_the_walk_sees_every_service() -> None:
    names = {service.full_name for service, _ in contract_methods()}
    # Would be trivially true on an empty walk: pin a few services we know exist.
    assert {
        "learnflow.v1.IdentityService",
        "learnflow.v1.CourseService",
        "learnflow.v1.ProgressService",
        "learnflow.v1.AuditService",
    } <= names
    assert len(contract_methods()) >= 30


def test_every_rpc_declares_a_complete_access_rule() -> None:
    problems: list[str] = []
    for service, method in contract_methods():
        path = f"/{service.full_name}/{method.name}"
        options = method.GetOptions()
        if not options.HasExtension(access_pb2.access):
            problems.append(f"{path}: no (learnflow.v1.access) option")
            continue
        rule = options.Extensions[access_pb2.access]
        if rule.audience == access_pb2.AUDIENCE_UNSPECIFIED:
            problems.append(f"{path}: audience unspecified")
        if rule.rate_limit not in RATE_CLASSES:
            problems.append(f"{path}: rate-limit class unspecified")
        if access_pb2.ROLE_UNSPECIFIED in rule.roles:
            problems.append(f"{path}: ROLE_UNSPECIFIED among its roles")
        if rule.audience == access_pb2.AUDIENCE_PUBLIC and rule.roles:
            problems.append(f"{path}: public yet lists roles")
    assert not problems, "\n".join(problems)


def test_the_server_loads_a_rule_for_every_rpc_of_the_contract() -> None:
    """`API_FILES` (what the server reads) covers every service of the contract."""
    served = {s.full_name for s in api_services()}
    contract = {service.full_name for service, _ in contract_methods()}
    assert served == contract, f"missing from API_FILES: {sorted(contract - served)}"
    rules = load_rules()
    paths = {f"/{s.full_name}/{m.name}" for s, m in contract_methods()}
    assert set(rules) == paths


def test_loaded_rules_match_the_proto_options() -> None:
    rules = load_rules()
    # Spot checks on the three kinds of rule, read from the proto rather than restated.
    assert rules["/learnflow.v1.IdentityService/CreateSession"] == MethodRule(
        "/learnflow.v1.IdentityService/CreateSession", True, frozenset(), "auth"
    )
    assert rules["/learnflow.v1.AuditService/ListAuditEvents"].roles == {"admin"}
    assert not rules["/learnflow.v1.ProfileService/GetCurrentUser"].public
    assert rules["/learnflow.v1.ProfileService/GetCurrentUser"].roles == frozenset()


def test_account_recovery_is_public_and_in_the_auth_budget() -> None:
    """A locked-out user has no token: resets and verification links work without one, on
    the login's small per-client budget; re-sending a verification mail needs a session."""
    rules = load_rules()
    for name in ("CreatePasswordReset", "ConfirmPasswordReset", "ConfirmEmailVerification"):
        rule = rules[f"/learnflow.v1.IdentityService/{name}"]
        assert (rule.public, rule.roles, rule.rate_class) == (True, frozenset(), "auth"), name
    resend = rules["/learnflow.v1.IdentityService/SendVerificationEmail"]
    assert (resend.public, resend.roles, resend.rate_class) == (False, frozenset(), "auth")


# -------------------------------------------------------------- load_rules refuses bad rules


def _pool_with(
    configure: Callable[[descriptor_pb2.MethodDescriptorProto], None],
) -> ServiceDescriptor:
    """A test-only service `t.v1.Probe` with one well-declared method `Fine` and one method
    `Probe` whose options `configure` sets, built in a private descriptor pool."""
    pool = descriptor_pool.DescriptorPool()
    for dependency in (descriptor_pb2.DESCRIPTOR, access_pb2.DESCRIPTOR):
        proto = descriptor_pb2.FileDescriptorProto()
        dependency.CopyToProto(proto)
        pool.Add(proto)
    file = descriptor_pb2.FileDescriptorProto(
        name="t/v1/probe.proto",
        package="t.v1",
        syntax="proto3",
        dependency=["learnflow/v1/access.proto"],
    )
    file.message_type.add(name="Empty")
    service = file.service.add(name="ProbeService")
    fine = service.method.add(name="Fine", input_type=".t.v1.Empty", output_type=".t.v1.Empty")
    rule = fine.options.Extensions[access_pb2.access]
    rule.audience = access_pb2.AUDIENCE_AUTHENTICATED
    rule.roles.append(access_pb2.ROLE_INSTRUCTOR)
    rule.rate_limit = access_pb2.RATE_LIMIT_CLASS_WRITE
    probe = service.method.add(name="Probe", input_type=".t.v1.Empty", output_type=".t.v1.Empty")
    configure(probe)
    pool.Add(file)
    return pool.FindServiceByName("t.v1.ProbeService")


def _declare(
    audience: int, rate_limit: int, roles: tuple[int, ...] = ()
) -> Callable[[descriptor_pb2.MethodDescriptorProto], None]:
    def configure(method: descriptor_pb2.MethodDescriptorProto) -> None:
        rule = method.options.Extensions[access_pb2.access]
        rule.audience = audience  # type: ignore[assignment]
        rule.rate_limit = rate_limit  # type: ignore[assignment]
        rule.roles.extend(roles)  # type: ignore[arg-type]

    return configure


def _no_option(method: descriptor_pb2.MethodDescriptorProto) -> None:
    method.options.deprecated = True  # other options, but not ours


def test_a_well_declared_test_service_loads() -> None:
    """The control for the refusals below: the same construction with a valid rule loads."""
    service = _pool_with(_declare(access_pb2.AUDIENCE_PUBLIC, access_pb2.RATE_LIMIT_CLASS_AUTH))
    rules = load_rules([service])
    assert rules == {
        "/t.v1.ProbeService/Fine": MethodRule(
            "/t.v1.ProbeService/Fine", False, frozenset({"instructor"}), "write"
        ),
        "/t.v1.ProbeService/Probe": MethodRule(
            "/t.v1.ProbeService/Probe", True, frozenset(), "auth"
        ),
    }


@pytest.mark.parametrize(
    ("configure", "complaint"),
    [
        (_no_option, "declares no (learnflow.v1.access) option"),
        (
            _declare(access_pb2.AUDIENCE_UNSPECIFIED, access_pb2.RATE_LIMIT_CLASS_READ),
            "declares no audience",
        ),
        (
            _declare(access_pb2.AUDIENCE_AUTHENTICATED, access_pb2.RATE_LIMIT_CLASS_UNSPECIFIED),
            "declares no rate-limit class",
        ),
        (
            _declare(
                access_pb2.AUDIENCE_PUBLIC,
                access_pb2.RATE_LIMIT_CLASS_READ,
                roles=(access_pb2.ROLE_ADMIN,),
            ),
            "is public but lists roles",
        ),
        (
            _declare(
                access_pb2.AUDIENCE_AUTHENTICATED,
                access_pb2.RATE_LIMIT_CLASS_WRITE,
                roles=(access_pb2.ROLE_UNSPECIFIED,),
            ),
            "lists an unspecified or unknown role",
        ),
    ],
    ids=["no-option", "no-audience", "no-rate-class", "public-with-roles", "unspecified-role"],
)
def test_load_rules_refuses_an_incomplete_rule(
    configure: Callable[[descriptor_pb2.MethodDescriptorProto], None], complaint: str
) -> None:
    service = _pool_with(configure)
    with pytest.raises(MissingAccessRule) as refused:
        load_rules([service])
    assert str(refused.value) == f"/t.v1.ProbeService/Probe {complaint}"


async def test_an_unknown_method_is_unimplemented_not_an_interceptor_error(
    channel: grpc.aio.Channel,
) -> None:
    # No handler: the interceptor must step aside so gRPC answers UNIMPLEMENTED (clients such
    # as the gateway's reflection client rely on it to fall back to another version).
    call = channel.unary_unary(
        "/grpc.reflection.v1.NoSuchService/Nothing",
        request_serializer=lambda _: b"",
        response_deserializer=lambda data: data,
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(b"")
    assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
