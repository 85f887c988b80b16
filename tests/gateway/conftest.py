"""Fixtures: generated test protos, a grpc.aio backend and the gateway app in front of it.

Everything lives here (rather than in helper modules) so test modules need no local imports,
which pytest and mypy would resolve under different module names.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
import pytest
from google.api import annotations_pb2
from google.protobuf import any_pb2, empty_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from starlette.applications import Starlette

from gateway.app import create_app
from gateway.proxy import Gateway
from gateway.settings import Settings

PROTO_ROOT = Path(__file__).parent / "protos"
PROTO_FILES = ("gwtest/v1/gwtest.proto", "gwtest/v1/extra.proto")
THING_SERVICE = "gwtest.v1.ThingService"
EXTRA_SERVICE = "gwtest.v1.ExtraService"

Context = grpc.aio.ServicerContext[Any, Any]
# Neither grpc_tools nor the asyncio health servicer ship type information.
protoc: Any = importlib.import_module("grpc_tools.protoc")
health_module: Any = importlib.import_module("grpc_health.v1.health")


@dataclass(frozen=True)
class Generated:
    pb2: Any
    extra_pb2: Any
    # FileDescriptorSet with source info (comments), for the OpenAPI tests.
    descriptor_set: Path


def generate(out: Path) -> Generated:
    """Compile the test protos with grpc_tools and import the generated modules."""
    googleapis = Path(annotations_pb2.__file__).parent.parent.parent
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    descriptor_set = out / "gwtest.pb"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--descriptor_set_out={descriptor_set}",
        "--include_source_info",
        "--include_imports",
        *PROTO_FILES,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on the gateway test protos")
    sys.path.insert(0, str(out))
    pb2: ModuleType = importlib.import_module("gwtest.v1.gwtest_pb2")
    extra: ModuleType = importlib.import_module("gwtest.v1.extra_pb2")
    return Generated(pb2=pb2, extra_pb2=extra, descriptor_set=descriptor_set)


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class ThingHandlers:
    def __init__(self, pb2: Any) -> None:
        self.pb2 = pb2

    async def create_thing(self, request: Any, context: Context) -> Any:
        thing = self.pb2.Thing()
        thing.CopyFrom(request.thing)
        thing.id = f"{request.shelf}/t1"
        if request.validate_only:
            thing.tags.append("validated")
        return thing

    async def get_thing(self, request: Any, context: Context) -> Any:
        if request.thing_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"thing {request.thing_id} not found")
        return self.pb2.Thing(
            id=request.thing_id,
            display_name=f"shelf={request.shelf}",
            tags=list(request.read_mask.paths),
            big=2**53 + 1,
        )

    async def get_featured(self, request: Any, context: Context) -> Any:
        return self.pb2.Thing(id="featured")

    async def update_thing(self, request: Any, context: Context) -> Any:
        thing = self.pb2.Thing()
        thing.CopyFrom(request.thing)
        thing.mask.CopyFrom(request.update_mask)
        return thing

    async def replace_thing(self, request: Any, context: Context) -> Any:
        return self.pb2.Thing(
            id=request.thing_id, display_name=request.display_name, inner=request.inner
        )

    async def delete_thing(self, request: Any, context: Context) -> Any:
        context.set_trailing_metadata((("x-deleted", request.thing_id),))
        return empty_pb2.Empty()

    async def publish_thing(self, request: Any, context: Context) -> Any:
        return self.pb2.Thing(id=request.thing_id, display_name=request.reason, tags=["published"])

    async def rename_thing(self, request: Any, context: Context) -> Any:
        thing = self.pb2.Thing(
            id=request.thing_id, display_name=request.display_name, text=request.request_id
        )
        thing.mask.CopyFrom(request.update_mask)
        return thing

    async def get_thing_inner(self, request: Any, context: Context) -> Any:
        return self.pb2.Thing(
            id=request.thing_id, inner=self.pb2.Inner(note=f"inner of {request.thing_id}", level=3)
        )

    async def get_resource(self, request: Any, context: Context) -> Any:
        suffix = f"?view={request.view}" if request.view else ""
        return self.pb2.Resource(name=request.name + suffix)

    async def get_book(self, request: Any, context: Context) -> Any:
        return self.pb2.Resource(name=f"{request.shelf}|{request.book}")

    async def echo(self, request: Any, context: Context) -> Any:
        seen: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            seen[key] = value.hex() if isinstance(value, bytes) else value
        await context.send_initial_metadata((("x-echo-initial", "yes"),))
        context.set_trailing_metadata(
            (
                ("x-echo-trailer", "done"),
                ("x-consistency-token", "tok-42"),
                ("x-secret-bin", b"\x00\x01"),
            )
        )
        remaining = context.time_remaining()
        return self.pb2.EchoResponse(
            thing=request, metadata=seen, deadline_s=-1 if remaining is None else remaining
        )

    async def fail(self, request: Any, context: Context) -> Any:
        if request.HasField("sleep"):
            await asyncio.sleep(request.sleep.ToTimedelta().total_seconds())
        if request.code == 0:
            return empty_pb2.Empty()
        code = next(c for c in grpc.StatusCode if c.value[0] == request.code)
        details: list[any_pb2.Any] = []
        if request.bad_field:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=request.bad_field, description="is wrong"
            )
            details.append(_pack(error_details_pb2.BadRequest(field_violations=[violation])))
        if request.HasField("retry_delay"):
            details.append(_pack(error_details_pb2.RetryInfo(retry_delay=request.retry_delay)))
        trailing: tuple[tuple[str, bytes], ...] = ()
        if details:
            status = status_pb2.Status(code=request.code, message=request.message, details=details)
            trailing = (("grpc-status-details-bin", status.SerializeToString()),)
        await context.abort(code, request.message, trailing_metadata=trailing)

    async def stream_things(self, request: Any, context: Context) -> AsyncIterator[Any]:
        await context.send_initial_metadata((("x-stream", "on"),))
        remaining = context.time_remaining()
        for i in range(request.count):
            yield self.pb2.Thing(id=str(i), big=i, score=-1 if remaining is None else remaining)
        if request.fail_code:
            code = next(c for c in grpc.StatusCode if c.value[0] == request.fail_code)
            await context.abort(code, "stream broke")

    async def hidden(self, request: Any, context: Context) -> Any:
        return empty_pb2.Empty()


def _unary(
    fn: Callable[..., Any], request_type: Any, response_type: Any
) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        fn,
        request_deserializer=request_type.FromString,
        response_serializer=response_type.SerializeToString,
    )


def thing_service_handler(pb2: Any) -> grpc.GenericRpcHandler[Any, Any]:
    h = ThingHandlers(pb2)
    empty = empty_pb2.Empty
    return grpc.method_handlers_generic_handler(
        THING_SERVICE,
        {
            "CreateThing": _unary(h.create_thing, pb2.CreateThingRequest, pb2.Thing),
            "GetThing": _unary(h.get_thing, pb2.GetThingRequest, pb2.Thing),
            "GetFeatured": _unary(h.get_featured, empty, pb2.Thing),
            "UpdateThing": _unary(h.update_thing, pb2.UpdateThingRequest, pb2.Thing),
            "ReplaceThing": _unary(h.replace_thing, pb2.ReplaceThingRequest, pb2.Thing),
            "DeleteThing": _unary(h.delete_thing, pb2.DeleteThingRequest, empty),
            "PublishThing": _unary(h.publish_thing, pb2.PublishThingRequest, pb2.Thing),
            "RenameThing": _unary(h.rename_thing, pb2.RenameThingRequest, pb2.Thing),
            "GetThingInner": _unary(h.get_thing_inner, pb2.GetThingRequest, pb2.Thing),
            "GetResource": _unary(h.get_resource, pb2.GetResourceRequest, pb2.Resource),
            "GetBook": _unary(h.get_book, pb2.GetBookRequest, pb2.Resource),
            "Echo": _unary(h.echo, pb2.Thing, pb2.EchoResponse),
            "Fail": _unary(h.fail, pb2.FailRequest, empty),
            "StreamThings": grpc.unary_stream_rpc_method_handler(
                h.stream_things,
                request_deserializer=pb2.StreamThingsRequest.FromString,
                response_serializer=pb2.Thing.SerializeToString,
            ),
            "Hidden": _unary(h.hidden, empty, empty),
        },
    )


def extra_service_handler(extra_pb2: Any) -> grpc.GenericRpcHandler[Any, Any]:
    async def reflect(request: Any, context: Context) -> Any:
        return extra_pb2.Ping(value=request.value[::-1])

    return grpc.method_handlers_generic_handler(
        EXTRA_SERVICE, {"Reflect": _unary(reflect, extra_pb2.Ping, extra_pb2.Ping)}
    )


@dataclass
class Backend:
    server: grpc.aio.Server
    port: int
    health: Any

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse
        await self.health.set("", status.SERVING if serving else status.NOT_SERVING)

    async def stop(self) -> None:
        await self.server.stop(grace=None)


async def start_backend(generated: Generated, *, port: int = 0, extra: bool = False) -> Backend:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([thing_service_handler(generated.pb2)])
    names = [THING_SERVICE]
    if extra:
        server.add_generic_rpc_handlers([extra_service_handler(generated.extra_pb2)])
        names.append(EXTRA_SERVICE)
    health_servicer: Any = health_module.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    backend = Backend(server=server, port=bound, health=health_servicer)
    await backend.set_serving(True)
    return backend


RELOAD_TOKEN = "test-reload-secret"

# Small so the 413 test needs no megabyte payload.
TEST_MAX_BODY = 4096

StopBackend = Callable[[], Awaitable[None]]
LaunchBackend = Callable[[int, bool], Awaitable[StopBackend]]


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return generate(tmp_path_factory.mktemp("gwtest_gen"))


@pytest.fixture(scope="session")
async def backend(generated: Generated) -> AsyncIterator[Backend]:
    server = await start_backend(generated)
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def backend_target(backend: Backend) -> str:
    return backend.target


@pytest.fixture
def set_serving(backend: Backend) -> Callable[[bool], Awaitable[None]]:
    """Flip the backend's overall health status."""
    return backend.set_serving


@pytest.fixture
def launch_backend(generated: Generated) -> LaunchBackend:
    """Start another backend on a given port (optionally with ExtraService); returns its stop."""

    async def launch(port: int, extra: bool) -> StopBackend:
        server = await start_backend(generated, port=port, extra=extra)
        return server.stop

    return launch


@pytest.fixture(scope="session")
def descriptor_set(generated: Generated) -> Path:
    return generated.descriptor_set


@pytest.fixture(scope="session")
def settings(backend: Backend) -> Settings:
    return Settings(
        grpc_target=backend.target,
        max_body_bytes=TEST_MAX_BODY,
        reload_interval_s=0,
        cors_expose_metadata=("x-echo-initial",),
        reload_token=RELOAD_TOKEN,
        access_log_sample=1.0,  # every line, for the tests that read them
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings)
    # httpx's ASGITransport does not run the lifespan: start the gateway by hand.
    gateway: Gateway = application.state.gateway
    await gateway.start()
    await gateway.wait_loaded(within=10)
    yield application
    await gateway.stop()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c
