"""Account recovery by email, end to end through the real mail path: commands write email
jobs in their transaction, the server's sender delivers them over SMTP to a real aiosmtpd
server, and the links read from the received mail confirm password resets and addresses."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from learnflow import metrics
from learnflow.mail.sender import MailSender
from learnflow.mail.sink import Mailbox
from learnflow.server import Backend
from learnflow.settings import Settings
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from tests.commands_support import Pg
from tests.gateway_support import running_gateway
from tests.mail_support import (
    link_token,
    mail_settings,
    running_sender,
    set_aside_queued,
    smtp_server,
    wait_for_mail,
)
from tests.support import PASSWORD, Caller, field_violations, rich_status

NEW_PASSWORD = "a-brand-new-password"


@pytest.fixture(scope="module")
def sink_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mail")


@pytest.fixture(scope="module")
def sink_port(sink_dir: Path) -> Iterator[int]:
    with smtp_server(sink_dir) as port:
        yield port


@pytest.fixture(scope="module")
async def sender(
    backend: Backend, settings: Settings, sink_port: int, postgres_url: str
) -> AsyncIterator[MailSender]:
    await set_aside_queued(Pg(postgres_url))
    async with running_sender(backend.db, mail_settings(settings, sink_port)) as running:
        yield running


@pytest.fixture
def box(sink_dir: Path, sender: MailSender) -> Mailbox:
    return Mailbox(sink_dir)


def _ids(channel: grpc.aio.Channel) -> identity_pb2_grpc.IdentityServiceAsyncStub:
    return identity_pb2_grpc.IdentityServiceStub(channel)


def _profiles(channel: grpc.aio.Channel) -> identity_pb2_grpc.ProfileServiceAsyncStub:
    return identity_pb2_grpc.ProfileServiceStub(channel)


def _sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def _reset_token(caller: Caller, box: Mailbox) -> str:
    await _ids(caller.channel).CreatePasswordReset(
        identity_pb2.CreatePasswordResetRequest(email=caller.user.email)
    )
    mail = (await wait_for_mail(box, caller.user.email, subject="reset"))[0]
    return link_token(mail, "http://127.0.0.1:8080/reset-password?token=")


async def test_a_reset_request_answers_alike_and_mails_only_an_account(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox, pg: Pg
) -> None:
    unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
    known_reply = await _ids(channel).CreatePasswordReset(
        identity_pb2.CreatePasswordResetRequest(email=caller.user.email.upper())
    )
    unknown_reply = await _ids(channel).CreatePasswordReset(
        identity_pb2.CreatePasswordResetRequest(email=unknown)
    )
    # The same shape: only a consistency token, never anything about the account.
    assert [f.name for f, _ in known_reply.ListFields()] == ["consistency_token"]
    assert [f.name for f, _ in unknown_reply.ListFields()] == ["consistency_token"]

    mails = await wait_for_mail(box, caller.user.email, subject="reset")
    assert len(mails) == 1
    message = mails[0].message()
    assert message["Subject"] == "Reset your LearnFlow password"
    assert message.get_body(preferencelist=("html",)) is not None  # plain text + HTML
    token = link_token(mails[0], "http://127.0.0.1:8080/reset-password?token=")
    # The job is sent, its bodies (with the link) scrubbed; the Message-ID is the job's.
    job_id, state, text_body, sent_time = (
        await pg.rows(
            "SELECT id::text, state, text_body, sent_time FROM email_jobs"
            " WHERE recipient = %s AND kind = 'password_reset'",
            caller.user.email,
        )
    )[0]
    assert (state, text_body) == ("sent", "") and sent_time is not None
    assert message["Message-ID"] == f"<{job_id}@learnflow.local>"
    # Only the hash of the token is stored, with its account and expiry.
    stored = await pg.rows(
        "SELECT user_id::text, expires_at - created_at FROM account_tokens WHERE token_hash = %s",
        _sha256(token),
    )
    assert [(u, d.total_seconds()) for u, d in stored] == [(caller.user_id, 1800.0)]
    assert await pg.value("SELECT count(*) FROM account_tokens WHERE email = %s", unknown) == 1
    # The unknown address's request wrote its mail too, never to be sent.
    assert await pg.rows(
        "SELECT state, text_body FROM email_jobs WHERE recipient = %s", unknown
    ) == [("suppressed", "")]
    assert (
        await pg.value(
            "SELECT count(*) FROM account_tokens WHERE token_hash = convert_to(%s, 'UTF8')", token
        )
        == 0
    )
    # The unknown address got nothing; both requests are audited.
    await asyncio.sleep(0.3)
    assert box.list(to=unknown) == []
    assert ("password_reset.request", "success", caller.user_id) in await pg.audit(
        f"users/{caller.user_id}"
    )
    unknown_audit = await pg.rows(
        "SELECT outcome, details->>'reason' FROM audit_log"
        " WHERE action = 'password_reset.request' AND details->>'email_sha256' = %s",
        hashlib.sha256(unknown.encode()).hexdigest()[:16],
    )
    assert unknown_audit == [("ignored", "unknown email")]


async def test_the_mailed_link_sets_the_password_and_ends_every_session(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox, pg: Pg
) -> None:
    token = await _reset_token(caller, box)
    reply = await _ids(channel).ConfirmPasswordReset(
        identity_pb2.ConfirmPasswordResetRequest(token=token, new_password=NEW_PASSWORD)
    )
    assert reply.consistency_token
    # Every session ended: the old refresh token and the old access token are refused.
    with pytest.raises(grpc.aio.AioRpcError) as refresh:
        await _ids(channel).RefreshSession(
            identity_pb2.RefreshSessionRequest(refresh_token=caller.refresh_token)
        )
    assert refresh.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as old_access:
        await _profiles(channel).GetCurrentUser(
            identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata()
        )
    assert old_access.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The new password logs in, the old one does not; the mailed link verified the address.
    session = await _ids(channel).CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password=NEW_PASSWORD)
    )
    me = await _profiles(channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(),
        metadata=(
            ("authorization", f"Bearer {session.access_token}"),
            ("x-consistency-token", reply.consistency_token),
        ),
    )
    assert me.user.email_verified
    with pytest.raises(grpc.aio.AioRpcError) as old_password:
        await _ids(channel).CreateSession(
            identity_pb2.CreateSessionRequest(email=caller.user.email, password=PASSWORD)
        )
    assert old_password.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # Single use.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await _ids(channel).ConfirmPasswordReset(
            identity_pb2.ConfirmPasswordResetRequest(token=token, new_password="yet-another-one")
        )
    assert again.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "token" in field_violations(again.value)
    audit = await pg.audit(f"users/{caller.user_id}")
    assert ("password_reset.request", "success", caller.user_id) in audit
    assert ("password_reset.confirm", "success", caller.user_id) in audit
    refused = await pg.rows(
        "SELECT count(*) FROM audit_log WHERE action = 'password_reset.confirm'"
        " AND outcome = 'failure'"
    )
    assert refused[0][0] >= 1
    sent = await pg.rows(
        "SELECT a.outcome FROM audit_log a JOIN email_jobs j ON a.resource = 'email_jobs/' || j.id"
        " WHERE j.recipient = %s AND j.kind = 'password_reset' AND a.action = 'email.sent'",
        caller.user.email,
    )
    assert sent == [("success",)]


async def test_an_expired_reset_token_is_refused(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox, pg: Pg
) -> None:
    token = await _reset_token(caller, box)
    await pg.rows(
        "UPDATE account_tokens SET expires_at = now() - interval '1 second'"
        " WHERE token_hash = %s RETURNING 1",
        _sha256(token),
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _ids(channel).ConfirmPasswordReset(
            identity_pb2.ConfirmPasswordResetRequest(token=token, new_password=NEW_PASSWORD)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "token" in field_violations(err.value)
    # The password did not change.
    ok = await _ids(channel).CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password=PASSWORD)
    )
    assert ok.access_token


async def test_of_concurrent_confirmations_exactly_one_wins(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox
) -> None:
    token = await _reset_token(caller, box)
    passwords = [f"concurrent-password-{i}" for i in range(6)]

    async def confirm(password: str) -> grpc.StatusCode:
        try:
            await _ids(channel).ConfirmPasswordReset(
                identity_pb2.ConfirmPasswordResetRequest(token=token, new_password=password)
            )
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    outcomes = await asyncio.gather(*(confirm(p) for p in passwords))
    assert sorted(o.name for o in outcomes) == ["INVALID_ARGUMENT"] * 5 + ["OK"]
    winner = passwords[outcomes.index(grpc.StatusCode.OK)]
    ok = await _ids(channel).CreateSession(
        identity_pb2.CreateSessionRequest(email=caller.user.email, password=winner)
    )
    assert ok.access_token


async def test_confirmation_checks_the_password_rules_and_the_token_shape(
    channel: grpc.aio.Channel, pg: Pg
) -> None:
    async with pg.unchanged():
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _ids(channel).ConfirmPasswordReset(
                identity_pb2.ConfirmPasswordResetRequest(token="not a token!", new_password="short")
            )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(err.value)) == {"token", "new_password"}
    with pytest.raises(grpc.aio.AioRpcError) as bad_email:
        await _ids(channel).CreatePasswordReset(
            identity_pb2.CreatePasswordResetRequest(email="not-an-email")
        )
    assert set(field_violations(bad_email.value)) == {"email"}


def _retry_delay_s(error: grpc.aio.AioRpcError) -> float:
    from google.rpc import error_details_pb2

    for detail in rich_status(error).details:
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(retry):
            return float(retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9)
    raise AssertionError("no RetryInfo")


async def test_reset_requests_are_limited_per_address_and_per_account_alike(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox, pg: Pg
) -> None:
    """5 requests an hour per address (the default), whether or not it has an account; an
    account gets at most 3 reset mails an hour, silently (the answers stay alike)."""
    unknown = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
    for email in (caller.user.email, unknown):
        for _ in range(5):
            await _ids(channel).CreatePasswordReset(
                identity_pb2.CreatePasswordResetRequest(email=email)
            )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _ids(channel).CreatePasswordReset(
                identity_pb2.CreatePasswordResetRequest(email=email)
            )
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 0 < _retry_delay_s(refused.value) <= 3600
        # The same words for both: nothing says whether the address has an account.
        assert email not in (refused.value.details() or "")
    await wait_for_mail(box, caller.user.email, subject="reset", count=3)
    await asyncio.sleep(0.3)
    assert len(box.list(to=caller.user.email, subject="reset")) == 3
    reasons = await pg.rows(
        "SELECT details->>'reason', count(*) FROM audit_log"
        " WHERE action = 'password_reset.request' AND resource = %s GROUP BY 1 ORDER BY 1",
        f"users/{caller.user_id}",
    )
    assert reasons == [("account budget spent", 2), ("mailed", 3)]


async def test_registration_is_unverified_until_the_mailed_link_is_confirmed(
    channel: grpc.aio.Channel, box: Mailbox, pg: Pg
) -> None:
    caller = await Caller.register(channel, name="Vera Verify")
    me = await _profiles(channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(), metadata=caller.metadata(caller.consistency_token)
    )
    assert me.user.id == caller.user_id and not me.user.email_verified
    mail = (await wait_for_mail(box, caller.user.email, subject="confirm"))[0]
    token = link_token(mail, "http://127.0.0.1:8080/verify-email?token=")
    confirmed = await _ids(channel).ConfirmEmailVerification(
        identity_pb2.ConfirmEmailVerificationRequest(token=token)
    )
    me = await _profiles(channel).GetCurrentUser(
        identity_pb2.GetCurrentUserRequest(),
        metadata=caller.metadata(confirmed.consistency_token),
    )
    assert me.user.email_verified
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await _ids(channel).ConfirmEmailVerification(
            identity_pb2.ConfirmEmailVerificationRequest(token=token)
        )
    assert again.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as resend:
        await _ids(channel).SendVerificationEmail(
            identity_pb2.SendVerificationEmailRequest(), metadata=caller.metadata()
        )
    assert resend.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ("user.verify_email", "success", caller.user_id) in await pg.audit(
        f"users/{caller.user_id}"
    )


async def test_the_verification_mail_can_be_sent_again_within_a_budget(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox
) -> None:
    for _ in range(5):  # rate_limit_verification_email: 5/hour
        await _ids(channel).SendVerificationEmail(
            identity_pb2.SendVerificationEmailRequest(), metadata=caller.metadata()
        )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _ids(channel).SendVerificationEmail(
            identity_pb2.SendVerificationEmailRequest(), metadata=caller.metadata()
        )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    mails = await wait_for_mail(box, caller.user.email, subject="confirm", count=6)
    # Any of the links works (the newest here).
    token = link_token(mails[0], "/verify-email?token=")
    await _ids(channel).ConfirmEmailVerification(
        identity_pb2.ConfirmEmailVerificationRequest(token=token)
    )


async def test_registering_a_taken_email_answers_alike_and_tells_the_owner(
    channel: grpc.aio.Channel, box: Mailbox, pg: Pg
) -> None:
    email = f"taken-{uuid.uuid4().hex[:10]}@example.com"
    fresh = await _ids(channel).RegisterUser(
        identity_pb2.RegisterUserRequest(email=email, password=PASSWORD, display_name="Owner")
    )
    taken = await _ids(channel).RegisterUser(
        identity_pb2.RegisterUserRequest(
            email=email, password="an-intruder-password", display_name="Intruder"
        )
    )
    assert [f.name for f, _ in fresh.ListFields()] == ["consistency_token"]
    assert [f.name for f, _ in taken.ListFields()] == ["consistency_token"]
    notice = (await wait_for_mail(box, email, subject="tried to register"))[0]
    assert "Hello Owner" in notice.text()
    assert await pg.value("SELECT count(*) FROM users WHERE email = %s", email) == 1
    owner = await pg.value("SELECT id::text FROM users WHERE email = %s", email)
    assert ("user.register", "failure", None) in await pg.audit(f"users/{owner}")
    # Both appended as many events: the event log does not tell them apart either.
    events = await pg.rows(
        "SELECT event_type FROM events WHERE aggregate_id = %s"
        " AND event_type LIKE 'user.regist%%' ORDER BY position",
        owner,
    )
    assert events == [("user.registered",), ("user.registration_repeated",)]


async def test_a_registration_retried_with_its_request_id_mails_once(
    channel: grpc.aio.Channel, box: Mailbox, pg: Pg
) -> None:
    email = f"retry-{uuid.uuid4().hex[:10]}@example.com"
    request = identity_pb2.RegisterUserRequest(
        email=email, password=PASSWORD, display_name="Retry", request_id=str(uuid.uuid4())
    )
    first = await _ids(channel).RegisterUser(request)
    second = await _ids(channel).RegisterUser(request)
    assert first == second
    await wait_for_mail(box, email)
    await asyncio.sleep(0.3)
    assert len(box.list(to=email)) == 1  # the verification mail; no "tried to register"
    assert await pg.value("SELECT count(*) FROM email_jobs WHERE recipient = %s", email) == 1


async def test_sent_mail_is_counted_in_the_metrics(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox
) -> None:
    sent = metrics.EMAILS_SENT.labels(kind="password_reset")
    before = sent._value.get()
    await _reset_token(caller, box)
    # The sink has the message as soon as SMTP accepted it; the sender counts it right after,
    # once it has recorded the delivery: wait for that, then require exactly one more.
    for _ in range(100):
        if sent._value.get() != before:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # a second (wrong) count would show by now
    assert sent._value.get() == before + 1
    text = metrics.metrics_text()
    assert 'learnflow_email_jobs{state="queued"}' in text
    assert 'learnflow_emails_failed_total{kind="password_reset",outcome="gave_up"}' in text


async def test_over_http_a_taken_or_known_email_is_indistinguishable(backend: Backend) -> None:
    """Leak probes through the gateway: status, headers that matter and body shape are the
    same for an email with an account and one without, on registration and reset requests."""
    async with (
        running_gateway(f"127.0.0.1:{backend.port}") as gateway,
        httpx.AsyncClient(base_url=gateway.url) as client,
    ):
        taken = f"probe-{uuid.uuid4().hex[:10]}@example.com"
        body = {"email": taken, "password": PASSWORD, "displayName": "Probe"}
        await client.post("/v1/users:register", json=body)
        fresh = f"probe-{uuid.uuid4().hex[:10]}@example.com"
        answers = [
            await client.post("/v1/users:register", json=body),
            await client.post("/v1/users:register", json={**body, "email": fresh}),
            await client.post("/v1/passwordResets", json={"email": taken}),
            await client.post(
                "/v1/passwordResets", json={"email": f"none-{uuid.uuid4().hex[:8]}@example.com"}
            ),
        ]
    shapes = [(a.status_code, a.headers["content-type"], sorted(a.json())) for a in answers]
    assert shapes == [(200, "application/json", ["consistencyToken"])] * 4


async def test_every_recovery_write_retried_with_its_request_id_answers_alike_once(
    channel: grpc.aio.Channel, caller: Caller, box: Mailbox, pg: Pg
) -> None:
    ids = _ids(channel)
    # A reset request: the retry mails nothing more.
    reset = identity_pb2.CreatePasswordResetRequest(
        email=caller.user.email, request_id=str(uuid.uuid4())
    )
    assert await ids.CreatePasswordReset(reset) == await ids.CreatePasswordReset(reset)
    mail = (await wait_for_mail(box, caller.user.email, subject="reset"))[0]
    await asyncio.sleep(0.3)
    assert len(box.list(to=caller.user.email, subject="reset")) == 1
    # Its confirmation: the retry presents a spent token and still gets the first answer...
    confirm = identity_pb2.ConfirmPasswordResetRequest(
        token=link_token(mail, "http://127.0.0.1:8080/reset-password?token="),
        new_password=NEW_PASSWORD,
        request_id=str(uuid.uuid4()),
    )
    first = await ids.ConfirmPasswordReset(confirm)
    assert await ids.ConfirmPasswordReset(confirm) == first
    # ...while the same token under another request id is refused, and so is a changed body.
    for other in (
        identity_pb2.ConfirmPasswordResetRequest(
            token=confirm.token, new_password=NEW_PASSWORD, request_id=str(uuid.uuid4())
        ),
        identity_pb2.ConfirmPasswordResetRequest(
            token=confirm.token, new_password="yet-another-pass", request_id=confirm.request_id
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await ids.ConfirmPasswordReset(other)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    changes = await pg.value(
        "SELECT count(*) FROM audit_log WHERE action = 'password_reset.confirm'"
        " AND outcome = 'success' AND resource = %s",
        f"users/{caller.user_id}",
    )
    assert changes == 1

    # A verification mail sent again, retried: one more mail, not two.
    fresh = await Caller.register(channel, name="Retry Verify")
    await wait_for_mail(box, fresh.user.email, subject="confirm")
    send = identity_pb2.SendVerificationEmailRequest(request_id=str(uuid.uuid4()))
    assert await ids.SendVerificationEmail(
        send, metadata=fresh.metadata()
    ) == await ids.SendVerificationEmail(send, metadata=fresh.metadata())
    mails = await wait_for_mail(box, fresh.user.email, subject="confirm", count=2)
    await asyncio.sleep(0.3)
    assert len(box.list(to=fresh.user.email, subject="confirm")) == 2
    # Its confirmation, retried: the same answer twice.
    verify = identity_pb2.ConfirmEmailVerificationRequest(
        token=link_token(mails[0], "/verify-email?token="), request_id=str(uuid.uuid4())
    )
    assert await ids.ConfirmEmailVerification(verify) == await ids.ConfirmEmailVerification(verify)
