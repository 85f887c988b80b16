"""`python -m gateway`: serve the HTTP gateway with uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    # Access lines are already JSON documents: print them bare.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,  # the gateway writes its own structured access log
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
