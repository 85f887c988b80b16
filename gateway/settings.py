"""Gateway configuration, read once from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.metadata import Network, parse_networks
from gateway.static import DEFAULT_CONTENT_SECURITY_POLICY

_PREFIX = "LEARNFLOW_GATEWAY_"
TRACING_MODES = ("off", "otlp")
TRUST_TRACEPARENT = ("none", "proxies", "all")


class SettingsError(ValueError):
    """An environment variable holds a value the gateway cannot use."""


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Settings:
    # The gRPC backend (`host:port`, or `dns:///name:port` to balance over every address).
    grpc_target: str = "127.0.0.1:50051"
    # gRPC connections calls are spread over (server workers sharing one port each get some).
    channels: int = 1
    # The request field an `Idempotency-Key` header fills (AIP-155's request_id).
    idempotency_field: str = "request_id"
    # Browser origins allowed by CORS (comma-separated).
    cors_origins: tuple[str, ...] = ("http://localhost:5173", "http://127.0.0.1:5173")
    # Extra response metadata keys browsers may read, exposed as `Grpc-Metadata-<key>`.
    cors_expose_metadata: tuple[str, ...] = ()
    # Request cookies forwarded to the backend, as one `cookie` metadata entry (comma-separated
    # names; e.g. a session cookie). Other cookies never leave the gateway.
    forward_cookies: frozenset[str] = frozenset()
    # Response metadata keys sent as HTTP headers of their own name instead of
    # `Grpc-Metadata-<key>` (comma-separated; e.g. `set-cookie`, which scripts cannot read).
    metadata_headers: frozenset[str] = frozenset()
    # Largest request body accepted (413 beyond); keep equal to the backend's message limit.
    max_body_bytes: int = 1024 * 1024
    # Deadline of a unary call unless the client sends Grpc-Timeout, in seconds.
    default_timeout_s: float = 30.0
    # Server-streaming calls (watch feeds) are long-lived: no deadline unless the client sends
    # Grpc-Timeout, or this is set. 0 means none.
    stream_timeout_s: float = 0.0
    # Address and port the gateway listens on.
    host: str = "127.0.0.1"
    port: int = 8080
    # Title of the generated OpenAPI document.
    api_title: str = "LearnFlow API"
    # How often to re-read reflection to notice a redeployed backend; 0 turns it off.
    reload_interval_s: float = 30.0
    # Upper bound of the wait between attempts while the backend is not up yet.
    startup_max_backoff_s: float = 5.0
    # Proxies in front of the gateway whose X-Forwarded-For is believed; by default none.
    trusted_proxies: tuple[Network, ...] = ()
    # Bearer token that authorizes POST /-/reload; without one the endpoint does not exist.
    reload_token: str = ""
    # 431 beyond these: any one header (name + value), and all request headers together.
    max_header_bytes: int = 8 * 1024
    max_headers_total_bytes: int = 32 * 1024
    # JSON bodies (and JSON query values) nested deeper than this are refused before parsing.
    max_json_depth: int = 64
    # A built web app to serve at `/` (its files, and index.html for browser navigations to
    # paths no API route claims); empty: none, `/` describes the API instead.
    static_dir: str = ""
    # Content-Security-Policy sent with the web app's files.
    content_security_policy: str = DEFAULT_CONTENT_SECURITY_POLICY
    # Health service names /readyz reports beside the backend's overall status: one that is
    # not SERVING makes the answer DEGRADED (still 200: the gateway serves), with the details
    # its health check carries as trailing metadata (e.g. a count).
    ready_services: tuple[str, ...] = ()
    # Bytes of remembered reply transcodings (JSON and ETag by the reply's bytes, see
    # gateway/memo.py); 0 turns the memo off.
    response_memo_bytes: int = 16 * 1024 * 1024
    # Share (0..1) of fast successful requests that get an access-log line; failures (4xx,
    # 5xx) and requests slower than access_log_slow_ms always do (metrics count every one).
    access_log_sample: float = 0.01
    access_log_slow_ms: float = 250.0
    # OpenTelemetry tracing: `off` (nothing installed) or `otlp` (spans exported over
    # OTLP/gRPC); the standard OTEL_* variables apply where the SDK reads them.
    tracing: str = "off"
    # The OTLP collector (e.g. `http://otel-collector:4317`); empty: OTEL_EXPORTER_OTLP_ENDPOINT,
    # else `localhost:4317`.
    otlp_endpoint: str = ""
    # Share (0..1) of new traces recorded (OTEL_TRACES_SAMPLER, when set, replaces this).
    trace_sample_ratio: float = 1.0
    # `service.name` of the spans (OTEL_SERVICE_NAME, when set, wins).
    trace_service_name: str = "learnflow-gateway"
    # Whose incoming `traceparent` a request's span continues: `none`, `proxies` (peers in
    # trusted_proxies) or `all`; anyone else's is ignored and the request starts a new trace.
    trust_traceparent: str = "proxies"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def get(name: str) -> str | None:
            value = env.get(_PREFIX + name)
            return value if value not in (None, "") else None

        def number(name: str, default: float, *, integer: bool = False) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                raise SettingsError(f"{_PREFIX}{name}={raw!r} is not a number") from None
            if value < 0:
                raise SettingsError(f"{_PREFIX}{name} must not be negative")
            return value

        origins = get("CORS_ORIGINS")
        expose = get("CORS_EXPOSE_METADATA")
        proxies = get("TRUSTED_PROXIES")
        try:
            trusted = parse_networks(_split(proxies)) if proxies else defaults.trusted_proxies
        except ValueError as exc:
            raise SettingsError(f"{_PREFIX}TRUSTED_PROXIES: {exc}") from None
        ready = get("READY_SERVICES")
        cookies = get("FORWARD_COOKIES")
        promoted = get("METADATA_HEADERS")
        tracing = get("TRACING") or defaults.tracing
        if tracing not in TRACING_MODES:
            raise SettingsError(f"{_PREFIX}TRACING must be one of {', '.join(TRACING_MODES)}")
        trust = get("TRUST_TRACEPARENT") or defaults.trust_traceparent
        if trust not in TRUST_TRACEPARENT:
            raise SettingsError(
                f"{_PREFIX}TRUST_TRACEPARENT must be one of {', '.join(TRUST_TRACEPARENT)}"
            )
        ratio = number("TRACE_SAMPLE_RATIO", defaults.trace_sample_ratio)
        if ratio > 1:
            raise SettingsError(f"{_PREFIX}TRACE_SAMPLE_RATIO must be between 0 and 1")
        log_sample = number("ACCESS_LOG_SAMPLE", defaults.access_log_sample)
        if log_sample > 1:
            raise SettingsError(f"{_PREFIX}ACCESS_LOG_SAMPLE must be between 0 and 1")
        return cls(
            access_log_sample=log_sample,
            response_memo_bytes=int(
                number("RESPONSE_MEMO_BYTES", defaults.response_memo_bytes, integer=True)
            ),
            access_log_slow_ms=number("ACCESS_LOG_SLOW_MS", defaults.access_log_slow_ms),
            tracing=tracing,
            otlp_endpoint=get("OTLP_ENDPOINT") or defaults.otlp_endpoint,
            trace_sample_ratio=ratio,
            trace_service_name=get("TRACE_SERVICE_NAME") or defaults.trace_service_name,
            trust_traceparent=trust,
            idempotency_field=get("IDEMPOTENCY_FIELD") or defaults.idempotency_field,
            channels=max(1, int(number("CHANNELS", defaults.channels, integer=True))),
            ready_services=_split(ready) if ready else defaults.ready_services,
            grpc_target=get("GRPC_TARGET") or defaults.grpc_target,
            cors_origins=defaults.cors_origins if origins is None else _split(origins),
            cors_expose_metadata=() if expose is None else _split(expose),
            forward_cookies=frozenset(_split(cookies)) if cookies else defaults.forward_cookies,
            metadata_headers=(
                frozenset(key.lower() for key in _split(promoted))
                if promoted
                else defaults.metadata_headers
            ),
            max_body_bytes=int(number("MAX_BODY_BYTES", defaults.max_body_bytes, integer=True)),
            default_timeout_s=number("DEFAULT_TIMEOUT_S", defaults.default_timeout_s),
            stream_timeout_s=number("STREAM_TIMEOUT_S", defaults.stream_timeout_s),
            host=get("HOST") or defaults.host,
            static_dir=get("STATIC_DIR") or defaults.static_dir,
            content_security_policy=(
                get("CONTENT_SECURITY_POLICY") or defaults.content_security_policy
            ),
            api_title=get("API_TITLE") or defaults.api_title,
            port=int(number("PORT", defaults.port, integer=True)),
            reload_interval_s=number("RELOAD_INTERVAL_S", defaults.reload_interval_s),
            startup_max_backoff_s=number("STARTUP_MAX_BACKOFF_S", defaults.startup_max_backoff_s),
            trusted_proxies=trusted,
            reload_token=get("RELOAD_TOKEN") or defaults.reload_token,
            max_header_bytes=int(
                number("MAX_HEADER_BYTES", defaults.max_header_bytes, integer=True)
            ),
            max_headers_total_bytes=int(
                number("MAX_HEADERS_TOTAL_BYTES", defaults.max_headers_total_bytes, integer=True)
            ),
            max_json_depth=int(number("MAX_JSON_DEPTH", defaults.max_json_depth, integer=True)),
        )
