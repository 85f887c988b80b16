"""Writes the OpenAPI document the gateway serves at /openapi.json, without running anything.

The gateway builds it from what the server's reflection answers: the contract's files with
their comments (learnflow/v1/contract.binpb) and the files they import. This script hands the
same files to the same builder, so a client generator (openapi-typescript in `web/`) or a CI
check can use the document without a database, a server or a gateway.

    python scripts/openapi_document.py                 # print it
    python scripts/openapi_document.py --out api.json  # write it

tests/test_gateway_openapi_live.py checks that the gateway serves exactly this document.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.descriptors import build_schema  # noqa: E402
from gateway.openapi import build_document  # noqa: E402
from gateway.routing import Router  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from learnflow.security.access import api_services  # noqa: E402
from learnflow.server import commented_files  # noqa: E402


def contract_files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """The API's files (commented where contract.binpb is current) and their imports."""
    commented = commented_files()
    pool = descriptor_pool.Default()
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    pending = [service.file.name for service in api_services()]
    while pending:
        name = pending.pop()
        if name in files:
            continue
        proto = descriptor_pb2.FileDescriptorProto()
        if name in commented:
            proto.ParseFromString(commented[name])
        else:
            pool.FindFileByName(name).CopyToProto(proto)
        files[name] = proto
        pending.extend(proto.dependency)
    return files


def document() -> dict[str, Any]:
    services = sorted(service.full_name for service in api_services())
    schema = build_schema(services, contract_files())
    methods = [method for service in schema.services for method in service.methods]
    settings = Settings()
    return build_document(
        schema,
        Router.for_methods(methods),
        title=settings.api_title,
        idempotency_field=settings.idempotency_field,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write here instead of printing")
    args = parser.parse_args(argv)
    text = json.dumps(document(), indent=2, ensure_ascii=False) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
