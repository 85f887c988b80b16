"""The mail itself, without a server: rendering, links, Message-IDs, backoff, failure kinds."""

from __future__ import annotations

import smtplib
import uuid
from types import SimpleNamespace

from learnflow.mail.outbox import link, password_reset_mail, registration_attempt_mail
from learnflow.mail.sender import MailSender, build_message, describe, message_id
from learnflow.settings import Settings


def test_links_are_built_from_the_public_url_with_the_token_encoded() -> None:
    assert (
        link("https://learn.example.com/", "/reset-password", "a-b_c")
        == "https://learn.example.com/reset-password?token=a-b_c"
    )


def test_a_reset_mail_has_the_link_in_text_and_html_and_escapes_the_name() -> None:
    mail = password_reset_mail("<Ada & co>", "https://x/reset-password?token=t1&x=<y>", 1800)
    assert "https://x/reset-password?token=t1&x=<y>" in mail.text
    assert "30 minutes" in mail.text
    assert "&lt;Ada &amp; co&gt;" in mail.html and "<Ada" not in mail.html
    assert 'href="https://x/reset-password?token=t1&amp;x=&lt;y&gt;"' in mail.html


def test_the_registration_notice_names_no_token() -> None:
    mail = registration_attempt_mail("Ada", "https://x/reset-password")
    assert "token" not in mail.text and "https://x/reset-password" in mail.text


def test_the_message_id_is_the_jobs_and_the_same_on_every_attempt() -> None:
    job_id = uuid.uuid4()
    sender = "LearnFlow <no-reply@mail.example.com>"
    assert message_id(job_id, sender) == f"<{job_id}@mail.example.com>"
    job = SimpleNamespace(
        id=job_id,
        kind="password_reset",
        recipient="ada@example.com",
        subject="Hi",
        text_body="text",
        html_body="<p>html</p>",
    )
    first, second = build_message(job, sender), build_message(job, sender)
    assert first["Message-ID"] == second["Message-ID"] == message_id(job_id, sender)
    assert [p.get_content_type() for p in first.iter_parts()] == ["text/plain", "text/html"]


def test_backoff_doubles_up_to_the_maximum() -> None:
    settings = Settings(mail_backoff_s=30.0, mail_backoff_max_s=300.0)
    sender = MailSender(None, settings)  # type: ignore[arg-type]  # no database needed here
    assert [sender.backoff_s(n) for n in range(1, 7)] == [30, 60, 120, 240, 300, 300]


def test_only_a_5xx_refusal_of_the_recipient_or_the_data_is_permanent() -> None:
    refused = smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")})
    assert describe(refused)[1] is True
    greylisted = smtplib.SMTPRecipientsRefused({"a@x": (450, b"try later")})
    assert describe(greylisted)[1] is False
    assert describe(smtplib.SMTPDataError(554, b"spam"))[1] is True
    assert describe(smtplib.SMTPDataError(451, b"later"))[1] is False
    # A wrong login is the operator's to fix: retried, not given up on at once.
    assert describe(smtplib.SMTPAuthenticationError(535, b"bad credentials"))[1] is False
    assert describe(ConnectionRefusedError(111, "Connection refused"))[1] is False
