"""Delivers the mail outbox over SMTP: at least once per job, never twice at the same time.

Every server process runs a sender when `LEARNFLOW_SMTP_HOST` is set. A job is claimed in a
short transaction (`FOR UPDATE SKIP LOCKED`: two senders never claim the same job) that
counts the attempt and moves `next_attempt_at` a lease ahead, so no other sender takes it
while this one talks to the SMTP server. The SMTP conversation happens outside any
transaction: an open transaction holding a row lock has an xid, and the projector reads no
event committed after the oldest open xid, so a slow mail server would stall every read model.

The outcome is written afterwards, fenced by the attempt number (a sender whose lease ran out
and whose job was claimed again writes nothing): `sent` with `sent_time` only once the SMTP
server accepted the message; otherwise the next attempt after an exponential backoff, or
`failed` after the last attempt or a permanent refusal (5xx for the recipient or the data).
A crash between the SMTP server's acceptance and that write sends the job again when the
lease ends; the Message-ID is derived from the job id, so the second copy is recognisable as
the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import smtplib
import ssl
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from sqlalchemy import text

from learnflow import metrics
from learnflow.context import CallContext, set_call
from learnflow.settings import Settings
from learnflow.storage.unit_of_work import Database

log = logging.getLogger("learnflow.mail")

Transport = Callable[[EmailMessage], None]

_CLAIM = text(
    """
    UPDATE email_jobs
       SET attempts = attempts + 1,
           next_attempt_at = now() + make_interval(secs => :lease),
           updated_at = now()
     WHERE id = (
             SELECT id FROM email_jobs
              WHERE state = 'queued' AND next_attempt_at <= now()
              ORDER BY next_attempt_at
              LIMIT 1
              FOR UPDATE SKIP LOCKED
           )
    RETURNING id, kind, user_id, recipient, subject, text_body, html_body, attempts
    """
)
# Once sent or failed, the bodies (which hold single-use links) are not kept.
_SCRUB = "text_body = '', html_body = ''"


def message_id(job_id: uuid.UUID, sender: str) -> str:
    """The job's Message-ID: the same for every attempt of the job (its idempotency key)."""
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or "learnflow.local"
    return f"<{job_id}@{domain}>"


def build_message(job: Any, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = job.recipient
    message["Subject"] = job.subject
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = message_id(job.id, sender)
    message["Auto-Submitted"] = "auto-generated"
    message["X-LearnFlow-Kind"] = job.kind
    message.set_content(job.text_body)
    message.add_alternative(job.html_body, subtype="html")
    return message


def smtp_transport(settings: Settings) -> Transport:
    """Sends one message with smtplib (blocking: run it in a thread)."""

    def send(message: EmailMessage) -> None:
        timeout = settings.smtp_timeout_s
        client: smtplib.SMTP
        if settings.smtp_security == "tls":
            client = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        with client:
            if settings.smtp_security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                client.login(settings.smtp_username, settings.smtp_password)
            client.send_message(message)

    return send


def describe(exc: BaseException) -> tuple[str, bool]:
    """A short description of a failed attempt (no secrets: SMTP replies and exception
    names only), and whether it is permanent (the server refused the recipient or the
    message with a 5xx reply: trying again would get the same)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return f"recipient refused: {codes}", bool(codes) and all(c >= 500 for c in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        detail = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        permanent = isinstance(exc, smtplib.SMTPDataError) and exc.smtp_code >= 500
        return f"{type(exc).__name__} {exc.smtp_code}: {detail[:200]}", permanent
    return f"{type(exc).__name__}: {str(exc)[:200]}", False


class MailSender:
    def __init__(
        self, db: Database, settings: Settings, transport: Transport | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport or smtp_transport(settings)
        # Longer than one SMTP conversation can take (each step has its own timeout).
        self.lease_s = max(60.0, settings.smtp_timeout_s * 6)

    def backoff_s(self, attempts: int) -> float:
        delay = self.settings.mail_backoff_s * 2 ** max(0, attempts - 1)
        return float(min(delay, self.settings.mail_backoff_max_s))

    async def run(self, stop: asyncio.Event) -> None:
        set_call(CallContext(method="mail.sender", request_id="mail-sender"))
        log.info(
            "mail sender running",
            extra={"smtp": f"{self.settings.smtp_host}:{self.settings.smtp_port}"},
        )
        while not stop.is_set():
            try:
                while not stop.is_set() and await self.send_one():
                    pass
            except Exception as exc:  # the database may be away; the next round tries again
                log.warning("mail sender round failed: %s", type(exc).__name__)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.mail_poll_s)

    async def send_one(self) -> bool:
        """Claims one due job and tries to deliver it; False when none is due."""
        async with self.db.engine.begin() as conn:
            job = (await conn.execute(_CLAIM, {"lease": self.lease_s})).first()
        if job is None:
            return False
        message = build_message(job, self.settings.smtp_from)
        try:
            await asyncio.to_thread(self.transport, message)
        except Exception as exc:
            await self._failed(job, exc)
        else:
            await self._sent(job)
        return True

    async def _sent(self, job: Any) -> None:
        async with self.db.transaction() as uow:
            done = (
                await uow.conn.execute(
                    text(
                        f"UPDATE email_jobs SET state = 'sent', sent_time = now(),"
                        f" updated_at = now(), last_error = '', {_SCRUB}"
                        " WHERE id = :id AND attempts = :attempts AND state = 'queued'"
                        " RETURNING 1"
                    ),
                    {"id": job.id, "attempts": job.attempts},
                )
            ).first()
            if done is not None:
                await uow.audit(
                    "email.sent",
                    f"email_jobs/{job.id}",
                    details={"kind": job.kind, "attempts": job.attempts},
                    actor_id=job.user_id,
                )
        metrics.EMAILS_SENT.labels(kind=_kind(job.kind)).inc()
        log.info("mail sent", extra={"job": str(job.id), "kind": job.kind})

    async def _failed(self, job: Any, exc: BaseException) -> None:
        error, permanent = describe(exc)
        give_up = permanent or job.attempts >= self.settings.mail_max_attempts
        delay = self.backoff_s(job.attempts)
        async with self.db.transaction() as uow:
            if give_up:
                statement = text(
                    f"UPDATE email_jobs SET state = 'failed', last_error = :error,"
                    f" updated_at = now(), {_SCRUB}"
                    " WHERE id = :id AND attempts = :attempts AND state = 'queued' RETURNING 1"
                )
                values: dict[str, Any] = {}
            else:
                statement = text(
                    "UPDATE email_jobs SET last_error = :error, updated_at = now(),"
                    " next_attempt_at = now() + make_interval(secs => :delay)"
                    " WHERE id = :id AND attempts = :attempts AND state = 'queued' RETURNING 1"
                )
                values = {"delay": delay}
            done = (
                await uow.conn.execute(
                    statement, {"id": job.id, "attempts": job.attempts, "error": error, **values}
                )
            ).first()
            if done is not None and give_up:
                await uow.audit(
                    "email.failed",
                    f"email_jobs/{job.id}",
                    "failure",
                    {"kind": job.kind, "attempts": job.attempts, "error": error},
                    actor_id=job.user_id,
                )
        metrics.EMAILS_FAILED.labels(
            kind=_kind(job.kind), outcome="gave_up" if give_up else "retry"
        ).inc()
        log.warning(
            "mail delivery failed",
            extra={
                "job": str(job.id),
                "kind": job.kind,
                "attempt": job.attempts,
                "error": error,
                "next": "none (failed)" if give_up else f"in {delay:.0f}s",
            },
        )


async def queue_counts(db: Database) -> dict[str, int]:
    """Queued and failed jobs (sent ones are history)."""
    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT state, count(*) FROM email_jobs"
                    " WHERE state IN ('queued', 'failed') GROUP BY state"
                )
            )
        ).all()
    return {str(state): int(count) for state, count in rows}


def _kind(kind: str) -> str:
    return kind if kind in metrics.EMAIL_KINDS else "other"
