"""Mail in tests: a real SMTP server (aiosmtpd) on a free loopback port, storing into a
directory; the server's mail sender pointed at it; waiting for and reading what arrived."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from learnflow.mail.sender import MailSender
from learnflow.mail.sink import Mailbox, StoredMail, sink_controller
from learnflow.settings import Settings
from learnflow.storage.unit_of_work import Database
from tests.commands_support import Pg

TOKEN_IN_LINK = re.compile(r"[?&]token=([A-Za-z0-9_-]+)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def smtp_server(directory: Path, port: int = 0, handler: Any = None) -> Iterator[int]:
    """A running SMTP server on 127.0.0.1: the sink (or `handler`); yields its port."""
    port = port or free_port()
    controller = (
        Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5.0)
        if handler is not None
        else sink_controller(directory, "127.0.0.1", port)
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def mail_settings(settings: Settings, port: int, **changes: Any) -> Settings:
    """`settings` with SMTP pointed at 127.0.0.1:`port` and a quick sender."""
    quick: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_timeout_s": 5.0,
        "mail_poll_s": 0.05,
        "mail_backoff_s": 0.2,
        "mail_backoff_max_s": 1.0,
        "mail_max_attempts": 3,
        **changes,
    }
    return dataclasses.replace(settings, **quick)


async def set_aside_queued(pg: Pg) -> int:
    """Takes the jobs still queued out of the outbox (as `suppressed`): the suite's shared
    server runs no sender, so every registration before a mail test left a verification mail
    queued, and a sender started now would work through that backlog first. Returns how many."""
    rows = await pg.rows(
        "UPDATE email_jobs SET state = 'suppressed', text_body = '', html_body = '',"
        " last_error = 'set aside by the tests: queued while no sender ran'"
        " WHERE state = 'queued' RETURNING 1"
    )
    return len(rows)


@contextlib.asynccontextmanager
async def running_sender(db: Database, settings: Settings) -> AsyncIterator[MailSender]:
    """A mail sender task, as the server runs one, stopped on exit."""
    sender = MailSender(db, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        yield sender
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)


async def wait_for_mail(
    box: Mailbox, to: str, subject: str = "", count: int = 1, timeout_s: float = 10.0
) -> list[StoredMail]:
    """At least `count` messages to `to` (subject containing `subject`), newest first."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = box.list(to=to, subject=subject)
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} of {count} mail(s) to {to} arrived"
            return found
        await asyncio.sleep(0.05)


def link_token(mail: StoredMail, path: str) -> str:
    """The token of the link to `path` in the mail's text body."""
    text = mail.text()
    assert path in text, text
    found = TOKEN_IN_LINK.search(text)
    assert found is not None, text
    return found.group(1)
