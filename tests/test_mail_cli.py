"""`learnflow mail serve|list|show`: the development sink as `make up` runs it (its own
process), fed by a real SMTP client, read back by the CLI."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.mail_support import free_port


def _env(directory: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "LEARNFLOW_MAIL_DIR": str(directory),
        "LEARNFLOW_MAIL_SINK_LISTEN": f"127.0.0.1:{port}",
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "learnflow", "mail", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[dict[str, str], int]]:
    port = free_port()
    env = _env(tmp_path / "mail", port)
    with subprocess.Popen(
        [sys.executable, "-m", "learnflow", "mail", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert "mail sink on" in process.stdout.readline()
            yield env, port
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


def _send(port: int, to: str, subject: str, text: str) -> None:
    message = EmailMessage()
    message["From"] = "LearnFlow <no-reply@learnflow.local>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{time.time_ns()}@learnflow.local>"
    message.set_content(text)
    message.add_alternative(f"<p>{text}</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
        client.send_message(message)


def test_the_sink_stores_what_it_receives_and_the_cli_reads_it(
    sink: tuple[dict[str, str], int],
) -> None:
    env, port = sink
    empty = _cli(env, "list")
    assert empty.returncode == 0 and empty.stdout == ""
    _send(port, "ada@example.com", "First", "one")
    time.sleep(0.01)  # ids order by the millisecond
    _send(port, "ada@example.com", "Reset your password", "open http://x/reset?token=abc")
    _send(port, "bob@example.com", "Other", "three")

    listing = _cli(env, "list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert [line.rsplit("  ", 1)[-1] for line in lines] == ["Other", "Reset your password", "First"]
    filtered = _cli(env, "list", "--to", "ADA@example.com", "--subject", "reset", "--wait", "2")
    assert filtered.returncode == 0 and len(filtered.stdout.splitlines()) == 1
    message_id = filtered.stdout.split()[0]

    shown = _cli(env, "show", message_id)
    assert shown.returncode == 0, shown.stderr
    assert "Subject: Reset your password" in shown.stdout
    assert "To: ada@example.com" in shown.stdout
    assert "http://x/reset?token=abc" in shown.stdout
    assert "<p>" not in shown.stdout  # the text body, not the HTML

    missing = _cli(env, "show", "no-such-id")
    assert missing.returncode == 1 and "no single message" in missing.stderr
    waited = _cli(env, "list", "--to", "nobody@example.com", "--wait", "0.3")
    assert waited.returncode == 1
