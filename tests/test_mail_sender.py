"""The mail sender against real SMTP servers: retries with backoff while the server is down,
never sends one job twice when several senders share the outbox, and gives up after the last
attempt (or at once on a permanent refusal)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from learnflow import doctor, metrics
from learnflow.mail.sink import Mailbox
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.storage.unit_of_work import Database
from tests.commands_support import Pg
from tests.mail_support import (
    free_port,
    mail_settings,
    running_sender,
    set_aside_queued,
    smtp_server,
    wait_for_mail,
)


@pytest.fixture(autouse=True)
async def no_backlog(pg: Pg) -> None:
    """Each test's senders see only the jobs the test queues."""
    await set_aside_queued(pg)


async def _queue(pg: Pg, recipients: list[str], kind: str = "password_reset") -> list[str]:
    """Jobs as a command writes them (the outbox row only), returning their ids."""
    ids = [str(uuid.uuid4()) for _ in recipients]
    for job_id, recipient in zip(ids, recipients, strict=True):
        await pg.rows(
            "INSERT INTO email_jobs (id, kind, recipient, subject, text_body, html_body)"
            " VALUES (%s, %s, %s, 'Test mail', 'hello', '<p>hello</p>') RETURNING 1",
            job_id,
            kind,
            recipient,
        )
    return ids


async def _job(pg: Pg, job_id: str) -> tuple[Any, ...]:
    rows = await pg.rows(
        "SELECT state, attempts, sent_time, last_error, text_body FROM email_jobs WHERE id = %s",
        job_id,
    )
    return rows[0]


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_down_then_up_the_job_is_delivered_once_after_a_retry(
    backend: Backend, settings: Settings, pg: Pg, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there yet
    recipient = f"later-{uuid.uuid4().hex[:8]}@example.com"
    (job_id,) = await _queue(pg, [recipient])
    quick = mail_settings(settings, port, mail_max_attempts=50, mail_backoff_max_s=0.4)
    async with running_sender(backend.db, quick):

        async def failed_once() -> bool:
            state, attempts, _, error, _ = await _job(pg, job_id)
            return bool(state == "queued" and attempts >= 1 and "Connection" in error)

        await _until(failed_once)
        with smtp_server(tmp_path, port=port):
            box = Mailbox(tmp_path)
            mail = (await wait_for_mail(box, recipient))[0]

            async def recorded() -> bool:
                return bool((await _job(pg, job_id))[0] == "sent")

            await _until(recorded)
            await asyncio.sleep(0.5)  # a second copy would have arrived by now
            assert len(box.list(to=recipient)) == 1
    state, attempts, sent_time, error, body = await _job(pg, job_id)
    assert (state, error, body) == ("sent", "", "") and sent_time is not None
    assert attempts >= 2
    assert mail.message()["Message-ID"] == f"<{job_id}@learnflow.local>"


async def test_two_senders_on_the_same_jobs_send_each_exactly_once(
    backend: Backend, settings: Settings, pg: Pg, tmp_path: Path
) -> None:
    recipients = [f"once-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(30)]
    with smtp_server(tmp_path) as port:
        quick = mail_settings(settings, port)
        # Two senders as two server processes would run them: each with its own pool.
        other = Database.connect(settings.postgres_url, pool_size=2)
        try:
            async with running_sender(backend.db, quick), running_sender(other, quick):
                await _queue(pg, recipients)
                box = Mailbox(tmp_path)
                for recipient in recipients:
                    await wait_for_mail(box, recipient)
                await asyncio.sleep(0.5)
        finally:
            await other.close()
        counts = {r: len(box.list(to=r)) for r in recipients}
    assert set(counts.values()) == {1}, counts
    sent = await pg.value(
        "SELECT count(*) FROM email_jobs WHERE recipient = ANY(%s) AND state = 'sent'"
        " AND attempts = 1",
        recipients,
    )
    assert sent == len(recipients)


class _Refusing:
    """An SMTP server that refuses every message with `reply`."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.seen = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen += 1
        return self.reply


@pytest.mark.parametrize(
    ("reply", "attempts"),
    [("451 4.3.0 try again later", 3), ("554 5.6.0 message refused", 1)],
    ids=["temporary", "permanent"],
)
async def test_a_job_that_keeps_failing_ends_failed(
    backend: Backend, settings: Settings, pg: Pg, tmp_path: Path, reply: str, attempts: int
) -> None:
    """Temporary refusals: retried with backoff up to mail_max_attempts (3 here), then
    failed; a permanent one fails at once."""
    refusing = _Refusing(reply)
    recipient = f"refused-{uuid.uuid4().hex[:8]}@example.com"
    gave_up = metrics.EMAILS_FAILED.labels(kind="registration_attempt", outcome="gave_up")
    before = gave_up._value.get()
    with smtp_server(tmp_path, handler=refusing) as port:
        (job_id,) = await _queue(pg, [recipient], kind="registration_attempt")
        started = time.monotonic()
        async with running_sender(backend.db, mail_settings(settings, port)):

            async def failed() -> bool:
                return bool((await _job(pg, job_id))[0] == "failed")

            await _until(failed)
        elapsed = time.monotonic() - started
    state, tried, sent_time, error, body = await _job(pg, job_id)
    assert (state, tried, sent_time, body) == ("failed", attempts, None, "")
    assert reply.split()[0] in error
    if attempts == 3:
        assert elapsed >= 0.2 + 0.4  # the backoff: 0.2 s after the first, 0.4 s after the second
    assert gave_up._value.get() == before + 1
    audit = await pg.rows(
        "SELECT outcome FROM audit_log WHERE resource = %s AND action = 'email.failed'",
        f"email_jobs/{job_id}",
    )
    assert audit == [("failure",)]


async def test_doctor_reports_the_smtp_server_and_the_outbox(
    settings: Settings, pg: Pg, tmp_path: Path
) -> None:
    await _queue(pg, [f"doctor-{uuid.uuid4().hex[:8]}@example.com"])
    off = {c.name: c for c in await doctor.examine(settings)}
    assert not off["smtp"].ok and "mail off" in off["smtp"].detail
    assert not off["smtp"].required
    assert "mail off: queued jobs wait" in off["email jobs"].detail
    with smtp_server(tmp_path) as port:
        on = {c.name: c for c in await doctor.examine(mail_settings(settings, port))}
    assert on["smtp"].ok and f"127.0.0.1:{port}" in on["smtp"].detail
    secret = dataclasses.replace(
        mail_settings(settings, free_port()), smtp_username="u", smtp_password="hunter2-secret"
    )
    down = {c.name: c for c in await doctor.examine(secret)}
    assert not down["smtp"].ok and "unreachable" in down["smtp"].detail
    assert all("hunter2" not in c.detail for c in down.values())
    assert "hunter2" not in repr(secret)
