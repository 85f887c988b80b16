"""The development mail sink: an SMTP server on loopback (aiosmtpd) that accepts every
message and keeps it as a file, and the reading side of that mailbox (`learnflow mail
list/show`).

The directory is maildir-like: a message is written under `tmp/` and renamed into `new/`,
so a reader never sees half a file. Names sort by arrival (milliseconds, then a random
suffix), which gives "newest first" without opening the files.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import secrets
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


def store(directory: Path, content: bytes, mail_from: str, rcpt_tos: list[str]) -> str:
    """Keep one message (its raw bytes, with the envelope as `X-Sink-*` headers); returns
    its id."""
    for sub in ("tmp", "new"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    message_id = f"{time.time_ns() // 1_000_000:013d}-{secrets.token_hex(3)}"
    envelope = (
        f"X-Sink-Mail-From: {mail_from}\r\nX-Sink-Rcpt-To: {', '.join(rcpt_tos)}\r\n"
    ).encode()
    temporary = directory / "tmp" / message_id
    temporary.write_bytes(envelope + content)
    os.replace(temporary, directory / "new" / f"{message_id}.eml")
    return message_id


class SinkHandler:
    """aiosmtpd handler: every message is accepted and stored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        store(self.directory, content, str(envelope.mail_from), list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def sink_controller(directory: Path, host: str, port: int) -> Controller:
    """A stopped SMTP server storing into `directory`; `.start()` runs it in a thread."""
    return Controller(SinkHandler(directory), hostname=host, port=port, ready_timeout=5.0)


@dataclass(frozen=True)
class StoredMail:
    id: str
    path: Path

    def message(self) -> EmailMessage:
        with self.path.open("rb") as file:
            parsed = email.message_from_binary_file(file, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def matches(self, to: str, subject: str) -> bool:
        message = self.message()
        recipients = {a.lower() for _, a in email.utils.getaddresses([str(message["To"])])}
        return (not to or to in recipients) and subject in str(message["Subject"]).casefold()

    def text(self) -> str:
        body = self.message().get_body(preferencelist=("plain",))
        return str(body.get_content()) if body is not None else ""


class Mailbox:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def list(self, to: str = "", subject: str = "") -> list[StoredMail]:
        """The stored messages, newest first; only those to `to` and whose subject contains
        `subject` (case-insensitively) when given."""
        new = self.directory / "new"
        if not new.is_dir():
            return []
        names = sorted((p for p in new.iterdir() if p.suffix == ".eml"), reverse=True)
        found = [StoredMail(p.stem, p) for p in names]
        if to or subject:
            found = [m for m in found if m.matches(to.lower(), subject.casefold())]
        return found

    def find(self, wanted: str) -> StoredMail | None:
        """The message with this id, or the only one whose id starts or ends with it."""
        found = [m for m in self.list() if m.id == wanted]
        if not found and wanted:
            found = [m for m in self.list() if m.id.startswith(wanted) or m.id.endswith(wanted)]
        return found[0] if len(found) == 1 else None
