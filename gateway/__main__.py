"""`python -m gateway`: serve the HTTP gateway with uvicorn."""

from __future__ import annotations

import argparse
import logging

_DESCRIPTION = """\
Serve the generic HTTP/JSON gateway in front of a gRPC backend. Everything it serves (routes,
OpenAPI at /openapi.json, interactive docs at /docs) comes from the backend's reflection
service. Configuration is read from LEARNFLOW_GATEWAY_* environment variables, e.g.
LEARNFLOW_GATEWAY_GRPC_TARGET (default 127.0.0.1:50051), LEARNFLOW_GATEWAY_HOST
(127.0.0.1), LEARNFLOW_GATEWAY_PORT (8080), LEARNFLOW_GATEWAY_CORS_ORIGINS (comma-separated),
LEARNFLOW_GATEWAY_TRACING (off or otlp).
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    parse_args(argv)  # --help exits here, before anything starts
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import Settings, SettingsError
    from gateway.tracing import TraceIds, configure

    # Access lines are already JSON documents: print them bare.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = Settings.from_env()
        tracing = configure(
            settings.tracing,
            endpoint=settings.otlp_endpoint,
            ratio=settings.trace_sample_ratio,
            service_name=settings.trace_service_name,
            trust=settings.trust_traceparent,
            trusted_proxies=settings.trusted_proxies,
        )
        app = create_app(settings, tracing)
    except SettingsError as exc:
        raise SystemExit(f"gateway: {exc}") from None
    if tracing is not None:
        # Plain lines (errors) written inside a request's span end with its ids.
        for handler in logging.getLogger().handlers:
            handler.addFilter(TraceIds())
            handler.setFormatter(logging.Formatter("%(message)s%(trace_ids)s"))
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,  # the gateway writes its own structured access log
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
