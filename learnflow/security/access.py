"""Access rules, read from the `(learnflow.v1.access)` method option of every RPC."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from learnflow.v1 import (
    access_pb2,
    audit_pb2,
    courses_pb2,
    discussion_pb2,
    identity_pb2,
    learning_pb2,
)
from learnflow.vocabulary import ROLE_NAMES

API_FILES: tuple[FileDescriptor, ...] = (
    identity_pb2.DESCRIPTOR,
    courses_pb2.DESCRIPTOR,
    learning_pb2.DESCRIPTOR,
    discussion_pb2.DESCRIPTOR,
    audit_pb2.DESCRIPTOR,
)

RATE_CLASSES = {
    access_pb2.RATE_LIMIT_CLASS_READ: "read",
    access_pb2.RATE_LIMIT_CLASS_WRITE: "write",
    access_pb2.RATE_LIMIT_CLASS_AUTH: "auth",
}


@dataclass(frozen=True)
class MethodRule:
    method: str  # "/learnflow.v1.IdentityService/RegisterUser"
    public: bool
    roles: frozenset[str]  # empty: any authenticated caller
    rate_class: str


class MissingAccessRule(Exception):
    pass


def api_services() -> list[ServiceDescriptor]:
    return [service for f in API_FILES for service in f.services_by_name.values()]


def load_rules(services: list[ServiceDescriptor] | None = None) -> dict[str, MethodRule]:
    """Every RPC's rule; refuses to start if one lacks its audience or rate-limit class."""
    rules: dict[str, MethodRule] = {}
    for service in services if services is not None else api_services():
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            options = method.GetOptions()
            if not options.HasExtension(access_pb2.access):
                raise MissingAccessRule(f"{path} declares no (learnflow.v1.access) option")
            rule = options.Extensions[access_pb2.access]
            if rule.audience == access_pb2.AUDIENCE_UNSPECIFIED:
                raise MissingAccessRule(f"{path} declares no audience")
            if rule.rate_limit not in RATE_CLASSES:
                raise MissingAccessRule(f"{path} declares no rate-limit class")
            if any(role not in ROLE_NAMES for role in rule.roles):
                raise MissingAccessRule(f"{path} lists an unspecified or unknown role")
            if rule.audience == access_pb2.AUDIENCE_PUBLIC and rule.roles:
                raise MissingAccessRule(f"{path} is public but lists roles")
            rules[path] = MethodRule(
                method=path,
                public=rule.audience == access_pb2.AUDIENCE_PUBLIC,
                roles=frozenset(ROLE_NAMES[r] for r in rule.roles),
                rate_class=RATE_CLASSES[rule.rate_limit],
            )
    return rules
