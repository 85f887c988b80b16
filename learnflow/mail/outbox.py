"""The mail outbox: what a command writes, in its own transaction, to have a mail sent.

A job holds the whole rendered message (subject, plain text, HTML); the sender delivers it
later, so a rolled-back command never mails and a committed one always does (at least once).
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from sqlalchemy import insert

from learnflow.storage import tables
from learnflow.storage.unit_of_work import UnitOfWork

PASSWORD_RESET = "password_reset"
EMAIL_VERIFICATION = "email_verification"
REGISTRATION_ATTEMPT = "registration_attempt"
KINDS = (PASSWORD_RESET, EMAIL_VERIFICATION, REGISTRATION_ATTEMPT)


@dataclass(frozen=True)
class Mail:
    kind: str
    subject: str
    text: str
    html: str


def link(public_url: str, path: str, token: str) -> str:
    return f"{public_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def _render(kind: str, subject: str, paragraphs: list[str], url: str = "") -> Mail:
    """Plain text and a simple HTML body of the same paragraphs (and link, when given)."""
    text = "\n\n".join([*paragraphs[:1], *([url] if url else []), *paragraphs[1:]])
    parts = [f"<p>{html.escape(p)}</p>" for p in paragraphs]
    if url:
        anchor = f'<p><a href="{html.escape(url)}">{html.escape(url)}</a></p>'
        parts.insert(1, anchor)
    body = "<!doctype html><html><body>" + "".join(parts) + "</body></html>"
    return Mail(kind, subject, text + "\n\n-- \nLearnFlow\n", body)


def password_reset_mail(name: str, url: str, ttl_s: int) -> Mail:
    return _render(
        PASSWORD_RESET,
        "Reset your LearnFlow password",
        [
            f"Hello {name}, someone (we hope you) asked to reset the password of your "
            "LearnFlow account. To choose a new password, open this link:",
            f"The link works once and expires in {ttl_s // 60} minutes. Setting a new "
            "password signs you out everywhere.",
            "If you did not ask for this, ignore this mail: your password stays as it is.",
        ],
        url,
    )


def verification_mail(name: str, url: str, ttl_s: int) -> Mail:
    return _render(
        EMAIL_VERIFICATION,
        "Confirm your email address for LearnFlow",
        [
            f"Hello {name}, please confirm that this address is yours by opening this link:",
            f"The link works once and expires in {ttl_s // 3600} hours.",
            "If you did not create a LearnFlow account, ignore this mail.",
        ],
        url,
    )


def registration_attempt_mail(name: str, reset_url: str) -> Mail:
    return _render(
        REGISTRATION_ATTEMPT,
        "Someone tried to register with your address",
        [
            f"Hello {name}, someone just tried to create a LearnFlow account with this email "
            "address, which already has one: yours. Nothing was changed.",
            "If it was you and you forgot your password, you can reset it at "
            f"{reset_url}. Otherwise you can ignore this mail.",
        ],
    )


async def enqueue(
    uow: UnitOfWork, mail: Mail, recipient: str, user_id: uuid.UUID | None, send: bool = True
) -> uuid.UUID:
    """Queue `mail` for `recipient` in the command's transaction; returns the job id (which
    also names the message: Message-ID). `send=False` records it as `suppressed`, without
    bodies, never to be sent: the same write for a request that must not mail."""
    job_id = uuid.uuid4()
    await uow.conn.execute(
        insert(tables.email_jobs).values(
            id=job_id,
            kind=mail.kind,
            user_id=user_id,
            recipient=recipient,
            subject=mail.subject,
            text_body=mail.text if send else "",
            html_body=mail.html if send else "",
            state="queued" if send else "suppressed",
        )
    )
    return job_id
