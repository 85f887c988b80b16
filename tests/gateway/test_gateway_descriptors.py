"""Loading the contract through reflection."""

from __future__ import annotations

import asyncio

import grpc
import pytest

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


class _Reload:
    """Stands in for `reload` as a slow fetch that mishandles its cancellation."""

    def __init__(self, on_cancel: str) -> None:
        self.on_cancel = on_cancel
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if self.on_cancel == "raise":  # a cleanup in `finally` failed and replaced it
                raise RuntimeError("half-close failed") from None
            return False  # lost, as 3.11's wait_for can lose it
        return False


@pytest.mark.parametrize("on_cancel", ["raise", "swallow"])
async def test_watch_stops_when_cancelled_even_if_the_cancellation_is_disguised(
    backend_target: str, monkeypatch: pytest.MonkeyPatch, on_cancel: str
) -> None:
    async with grpc.aio.insecure_channel(backend_target) as channel:
        loader = DescriptorLoader(channel)
        fake = _Reload(on_cancel)
        monkeypatch.setattr(loader, "reload", fake)
        task = asyncio.create_task(loader.watch(0.01))
        while fake.calls < 3:  # noqa: ASYNC110 - cancel it mid-reload, after a few rounds
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task} and task.cancelled()
        calls = fake.calls
        await asyncio.sleep(0.1)
        assert fake.calls == calls


async def test_load_with_retry_stops_when_its_cancellation_is_disguised(
    backend_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with grpc.aio.insecure_channel(backend_target) as channel:
        loader = DescriptorLoader(channel)

        async def failing() -> bool:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                raise RuntimeError("half-close failed") from None
            raise RuntimeError("backend not ready")

        monkeypatch.setattr(loader, "reload", failing)
        task = asyncio.create_task(loader.load_with_retry(initial_delay=0.01, max_delay=0.01))
        await asyncio.sleep(0.2)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task} and task.cancelled()
