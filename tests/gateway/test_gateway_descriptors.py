"""Loading the contract through reflection."""

from __future__ import annotations

import grpc

from gateway.descriptors import DescriptorLoader, fetch_contract


async def test_fetch_contract_lists_services_and_dependencies(backend_target: str) -> None:
    async with grpc.aio.insecure_channel(backend_target) as channel:
        names, files = await fetch_contract(channel)
    # Reflection and health are infrastructure, not API.
    assert names == ["gwtest.v1.ThingService"]
    assert "gwtest/v1/gwtest.proto" in files
    assert "google/api/annotations.proto" in files
    assert "google/protobuf/descriptor.proto" in files


async def test_loader_builds_a_private_pool_and_detects_no_change(backend_target: str) -> None:
    async with grpc.aio.insecure_channel(backend_target) as channel:
        loader = DescriptorLoader(channel)
        seen: list[str] = []
        loader.subscribe(lambda schema: seen.append(schema.fingerprint))
        assert await loader.reload() is True
        assert await loader.reload() is False
        schema = loader.schema
        assert schema is not None
        assert seen == [schema.fingerprint]
        [service] = schema.services
        assert service.full_name == "gwtest.v1.ThingService"
        assert "StreamThings" in service.methods_by_name
        assert schema.pool.FindMessageTypeByName("gwtest.v1.Thing").fields_by_name["big"]
