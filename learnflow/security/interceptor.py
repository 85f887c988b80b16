"""The server's interceptor: call context, authentication, authorization, rate limits, errors.

One grpc-interceptor `AsyncServerInterceptor` rather than a chain: the call context lives in a
contextvar that must be set in the task that runs the handler, including while a server
stream is iterated, and one place makes that easy to see.
"""

from __future__ import annotations

import inspect
import ipaddress
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_interceptor.server import AsyncServerInterceptor

from learnflow.context import CallContext, reset_call, set_call
from learnflow.errors import DomainError, InvalidArgument, Unauthenticated, internal_status
from learnflow.security.access import MethodRule, api_services
from learnflow.security.authentication import Authenticator
from learnflow.security.denials import (
    REASON_TOKEN_INVALID,
    REASON_TOKEN_REQUIRED,
    AccessUnauthenticated,
    RoleNotAllowed,
)
from learnflow.security.field_limits import RequestLimits
from learnflow.security.rate_limits import RateLimiter
from learnflow.values import nul_text_violations

log = logging.getLogger("learnflow.rpc")


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    result: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if not key.endswith("-bin"):
            result[key.lower()] = value if isinstance(value, str) else value.decode()
    return result


def _peer_address(peer: str) -> str:
    # "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555"
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest or peer


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class ApiInterceptor(AsyncServerInterceptor):
    def __init__(
        self,
        rules: dict[str, MethodRule],
        authenticator: Authenticator,
        rate_limiter: RateLimiter,
        limits: RequestLimits | None = None,
    ) -> None:
        self.rules = rules
        self.authenticator = authenticator
        self.rate_limiter = rate_limiter
        # Compiled at start from the contract; refuses to start on an unbounded request field.
        self.limits = limits if limits is not None else RequestLimits(api_services())

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        method_name: str,
    ) -> Any:
        started = time.perf_counter()
        metadata = _metadata(context)
        call = CallContext(
            method=method_name,
            request_id=metadata.get("x-request-id", "")[:128] or uuid.uuid4().hex,
            client_address=self._client_address(context, metadata),
            consistency_token=metadata.get("x-consistency-token", ""),
        )
        token = set_call(call)
        try:
            await context.send_initial_metadata((("x-request-id", call.request_id),))
            call = await self._admit(call, metadata)
            set_call(call)
            if isinstance(request_or_iterator, Message):
                # Sizes first: O(1) per field, so the NUL scan below and the handler only
                # ever walk collections within their declared limits.
                violations = self.limits.violations(request_or_iterator)
                if not violations:
                    violations = nul_text_violations(request_or_iterator)
                if violations:
                    raise InvalidArgument(violations)
            result = method(request_or_iterator, context)
            if inspect.isasyncgen(result):
                return self._stream(result, call, context, started)
            response = await result
            self._log(call, "OK", started)
            return response
        except Exception as exc:
            await self._fail(exc, call, context, started)
        finally:
            reset_call(token)

    async def _admit(self, call: CallContext, metadata: dict[str, str]) -> CallContext:
        rule = self.rules.get(call.method)
        if rule is None:  # reflection and health: public, not rate limited
            return call
        authorization = metadata.get("authorization", "")
        principal = None
        if authorization:
            try:
                principal = await self.authenticator.authenticate(authorization)
            except Unauthenticated as exc:
                raise AccessUnauthenticated(
                    exc.message, REASON_TOKEN_INVALID, call.method
                ) from None
        if principal is None and not rule.public:
            raise AccessUnauthenticated(
                "this method requires an access token", REASON_TOKEN_REQUIRED, call.method
            )
        if rule.roles and (principal is None or principal.role not in rule.roles):
            raise RoleNotAllowed("your role may not call this method", call.method)
        call = CallContext(
            method=call.method,
            request_id=call.request_id,
            client_address=call.client_address,
            principal=principal,
            consistency_token=call.consistency_token,
        )
        subject = f"user:{principal.user_id}" if principal else f"addr:{call.client_address}"
        await self.rate_limiter.hit(rule.rate_class, subject)
        return call

    async def _stream(
        self,
        stream: AsyncIterator[Any],
        call: CallContext,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
    ) -> AsyncIterator[Any]:
        token = set_call(call)
        try:
            async for item in stream:
                yield item
            self._log(call, "OK", started)
        except Exception as exc:
            await self._fail(exc, call, context, started)
        finally:
            reset_call(token)

    async def _fail(
        self,
        exc: Exception,
        call: CallContext,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
    ) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        if isinstance(exc, DomainError):
            status = exc.to_status()
            self._log(call, exc.code.name, started, error=exc.message)
        else:
            log.exception("unhandled error in %s", call.method)
            status = internal_status(call.request_id)
            self._log(call, "INTERNAL", started, error=type(exc).__name__)
        await _abort(context, status)

    @staticmethod
    def _client_address(
        context: grpc.aio.ServicerContext[Any, Any], metadata: dict[str, str]
    ) -> str:
        peer = _peer_address(context.peer())
        forwarded = metadata.get("x-forwarded-for", "")
        # Only a proxy on this host (the gateway) is trusted to say who the client is.
        if forwarded and _is_loopback(peer):
            return forwarded.split(",")[0].strip()
        return peer

    @staticmethod
    def _log(call: CallContext, code: str, started: float, error: str = "") -> None:
        extra: dict[str, Any] = {
            "rpc": call.method,
            "code": code,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "client": call.client_address,
        }
        if call.principal:
            extra["user_id"] = str(call.principal.user_id)
        if error:
            extra["error"] = error
        log.info("rpc", extra=extra)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status) -> None:
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    await context.abort(_CODES.get(status.code, grpc.StatusCode.INTERNAL), status.message)


_CODES = {code.value[0]: code for code in grpc.StatusCode}
