"""Identity commands: accounts, sessions (login, refresh rotation, logout), roles, and
account recovery by email (password resets, email verification)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from typing import Any, NoReturn

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from learnflow.commands.course_input import is_https_url, mask_paths
from learnflow.context import Ctx, current_call
from learnflow.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from learnflow.events import (
    SESSION_CREATED,
    SESSION_FAMILY_REVOKED,
    SESSION_PASSWORD_CHANGED,
    SESSION_REFRESHED,
    SESSION_REVOKED,
    USER_DISABLED,
    USER_EMAIL_VERIFIED,
    USER_ENABLED,
    USER_PROFILE_CHANGED,
    USER_REGISTERED,
    USER_REGISTRATION_REPEATED,
    USER_ROLE_CHANGED,
    SessionPayload,
    UserPayload,
)
from learnflow.mail.outbox import (
    enqueue,
    link,
    password_reset_mail,
    registration_attempt_mail,
    verification_mail,
)
from learnflow.security.passwords import PasswordHasher, password_violation
from learnflow.security.rate_limits import RateLimiter
from learnflow.security.session_cookie import SessionCookie
from learnflow.security.tokens import TokenService, hash_refresh_token, new_refresh_token
from learnflow.settings import Settings
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database, UnitOfWork
from learnflow.v1 import identity_pb2, identity_pb2_grpc
from learnflow.values import parse_uuid, timestamp
from learnflow.vocabulary import ROLE_NAMES, ROLES

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BAD_LOGIN = "invalid email or password"
PROFILE_MASK_PATHS = frozenset({"display_name", "bio", "avatar_url"})
MAX_BIO = 1000
MAX_AVATAR_URL = 2048
# Account tokens (reset, verification links): 256 random bits, base64url.
ACCOUNT_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
PASSWORD_RESET = "password_reset"
EMAIL_VERIFICATION = "email_verification"
RESET_PATH = "/reset-password"
VERIFY_PATH = "/verify-email"
BAD_TOKEN = "is invalid, already used or expired; ask for a new link"


def normalise_email(email: str) -> str:
    return email.strip().lower()


def user_message(row: Any) -> identity_pb2.User:
    return identity_pb2.User(
        id=str(row.id),
        email=row.email,
        display_name=row.display_name,
        role=ROLES[row.role],
        disabled=row.disabled,
        create_time=timestamp(row.created_at),
        bio=row.bio,
        avatar_url=row.avatar_url,
        email_verified=row.email_verified_at is not None,
    )


def user_payload(row: Any) -> UserPayload:
    return {
        "id": str(row.id),
        "email": row.email,
        "display_name": row.display_name,
        "role": row.role,
        "disabled": row.disabled,
        "created_at": row.created_at.isoformat(),
        "bio": row.bio,
        "avatar_url": row.avatar_url,
        "email_verified": row.email_verified_at is not None,
    }


def profile_values(user: identity_pb2.User, paths: list[str]) -> dict[str, str]:
    """The columns UpdateCurrentUser sets, validated (field violations on failure)."""
    values: dict[str, str] = {}
    violations: list[FieldViolation] = []
    if "display_name" in paths:
        values["display_name"] = user.display_name.strip()
        if not 1 <= len(values["display_name"]) <= 80:
            violations.append(FieldViolation("user.display_name", "must be 1 to 80 characters"))
    if "bio" in paths:
        values["bio"] = user.bio.strip()
        if len(values["bio"]) > MAX_BIO:
            violations.append(FieldViolation("user.bio", f"must be at most {MAX_BIO:,} characters"))
    if "avatar_url" in paths:
        values["avatar_url"] = user.avatar_url.strip()
        if values["avatar_url"] and not is_https_url(values["avatar_url"], MAX_AVATAR_URL):
            violations.append(
                FieldViolation(
                    "user.avatar_url",
                    f"must be an https URL of at most {MAX_AVATAR_URL} characters, or empty",
                )
            )
    if violations:
        raise InvalidArgument(violations)
    return values


def session_payload(user_id: uuid.UUID) -> SessionPayload:
    return {"user_id": str(user_id)}


def new_account_token() -> tuple[str, bytes]:
    """A single-use link token and the SHA-256 stored in its place (256 random bits: a fast
    hash is enough, and the raw token is never stored outside the mail)."""
    token = secrets.token_urlsafe(32)
    return token, hash_account_token(token)


def hash_account_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def email_violation(email: str) -> FieldViolation | None:
    if not EMAIL_RE.match(email) or len(email) > 254:
        return FieldViolation("email", "must be a valid email address")
    return None


class IdentityCommands(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher,
        tokens: TokenService,
        refresh_ttl_s: int,
        rate_limiter: RateLimiter,
        cookie: SessionCookie | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.db = db
        self.rate_limiter = rate_limiter
        self.hasher = hasher
        self.tokens = tokens
        self.refresh_ttl = dt.timedelta(seconds=refresh_ttl_s)
        self.cookie = cookie or SessionCookie(max_age_s=refresh_ttl_s)

    async def RegisterUser(
        self, request: identity_pb2.RegisterUserRequest, context: Ctx = None
    ) -> identity_pb2.RegisterUserResponse:
        email = normalise_email(request.email)
        display_name = request.display_name.strip()
        violations: list[FieldViolation] = []
        if (bad_email := email_violation(email)) is not None:
            violations.append(bad_email)
        if (bad := password_violation(request.password)) is not None:
            violations.append(bad)
        if not 1 <= len(display_name) <= 80:
            violations.append(FieldViolation("display_name", "must be 1 to 80 characters"))
        if violations:
            raise InvalidArgument(violations)
        # Hashed whether or not the email is taken: both answers cost one bcrypt hash.
        password_hash = await self.hasher.hash(request.password)
        token, token_hash = new_account_token()
        ttl_s = self.settings.email_verification_ttl_s

        async def register(uow: UnitOfWork) -> identity_pb2.RegisterUserResponse:
            user_id = uuid.uuid4()
            try:
                async with uow.conn.begin_nested():
                    row = (
                        await uow.conn.execute(
                            insert(tables.users)
                            .values(
                                id=user_id,
                                email=email,
                                display_name=display_name,
                                role="student",
                                password_hash=password_hash,
                                disabled=False,
                                token_version=0,
                            )
                            .returning(*tables.users.c)
                        )
                    ).one()
            except IntegrityError:
                row = None
            if row is not None:
                await self._new_account_token(uow, EMAIL_VERIFICATION, user_id, email, token_hash)
                url = link(self.settings.public_url, VERIFY_PATH, token)
                await enqueue(uow, verification_mail(display_name, url, ttl_s), email, user_id)
                await uow.audit_and_emit(
                    "user.register",
                    f"users/{user_id}",
                    USER_REGISTERED,
                    user_id,
                    user_payload(row),
                    actor_id=user_id,
                )
            else:
                # The email has an account: the same answer as a new registration (same
                # shape, the same number of rows and events), and its owner is told by mail
                # (at most a few times an hour, so this cannot be used to flood them).
                owner = (
                    await uow.conn.execute(
                        select(tables.users).where(func.lower(tables.users.c.email) == email)
                    )
                ).one()
                notify = await self.rate_limiter.within_registration_notice(email)
                if notify:
                    reset_url = self.settings.public_url.rstrip("/") + RESET_PATH
                    await enqueue(
                        uow,
                        registration_attempt_mail(owner.display_name, reset_url),
                        email,
                        owner.id,
                    )
                await uow.audit_and_emit(
                    "user.register",
                    f"users/{owner.id}",
                    USER_REGISTRATION_REPEATED,
                    owner.id,
                    session_payload(owner.id),
                    outcome="failure",
                    details={"reason": "email already registered", "owner_notified": notify},
                )
            return identity_pb2.RegisterUserResponse(consistency_token=uow.consistency_token)

        return await self.db.run_command(
            request, request.request_id, identity_pb2.RegisterUserResponse, register
        )

    async def CreateSession(
        self,
        request: identity_pb2.CreateSessionRequest,
        context: Ctx = None,
    ) -> identity_pb2.CreateSessionResponse:
        by_cookie = _by_cookie(request.refresh_token_delivery, context)
        email = normalise_email(request.email)
        if not email or not request.password:
            raise InvalidArgument(
                [
                    FieldViolation(name, "is required")
                    for name, value in (("email", email), ("password", request.password))
                    if not value
                ]
            )
        # Besides the per-client budget of the interceptor: failed logins are counted per
        # account and per (account, address). Only failures count, so that a correct password
        # is refused only once the account's (large) failure budget is spent.
        address = current_call().client_address
        await self.rate_limiter.check_login(email, address)
        async with self.db.engine.connect() as conn:
            user = (
                await conn.execute(
                    select(tables.users).where(func.lower(tables.users.c.email) == email)
                )
            ).first()
        # Same work whether or not the account exists: a decoy hash is verified when it doesn't.
        ok = await self.hasher.verify(request.password, user.password_hash if user else None)
        if user is None or not ok or user.disabled:
            reason = "unknown email" if user is None else ("disabled" if ok else "wrong password")
            await self.rate_limiter.login_failed(email, address)
            await self.db.audit_alone(
                "session.create",
                f"users/{user.id}" if user else "users/-",
                "failure",
                {"reason": reason, "email_sha256": _digest(email)},
                actor_id=user.id if user else None,
            )
            raise Unauthenticated(BAD_LOGIN)

        async with self.db.transaction() as uow:
            refresh = await self._new_refresh_token(uow, user.id, family_id=uuid.uuid4())
            await uow.audit_and_emit(
                "session.create",
                f"users/{user.id}",
                SESSION_CREATED,
                user.id,
                session_payload(user.id),
                actor_id=user.id,
            )
        return identity_pb2.CreateSessionResponse(
            access_token=self.tokens.issue(user.id, user.role, user.token_version),
            refresh_token=self._hand_over(refresh, by_cookie, context),
            expires_in=self.tokens.ttl_s,
            token_type="Bearer",
            consistency_token=uow.consistency_token,
        )

    async def RefreshSession(
        self,
        request: identity_pb2.RefreshSessionRequest,
        context: Ctx = None,
    ) -> identity_pb2.RefreshSessionResponse:
        by_cookie = _by_cookie(request.refresh_token_delivery, context)
        presented = request.refresh_token
        if by_cookie and not presented and context is not None:
            presented = self.cookie.read(context.invocation_metadata() or ())
            if not presented:
                raise Unauthenticated("no session cookie: sign in again")
        if not presented:
            raise InvalidArgument([FieldViolation("refresh_token", "is required")])
        reuse_detected = False
        async with self.db.transaction() as uow:
            token = (
                await uow.conn.execute(
                    select(tables.refresh_tokens)
                    .where(tables.refresh_tokens.c.token_hash == hash_refresh_token(presented))
                    .with_for_update()
                )
            ).first()
            if token is None:
                raise Unauthenticated("unknown refresh token")
            if token.used_at is not None or token.revoked_at is not None:
                if token.revoked_at is None or token.used_at is not None:
                    # A used token presented again: someone holds a copy. Revoke the family,
                    # and end its access tokens now rather than when they expire: bumping
                    # token_version (checked on every call by the authenticator) refuses every
                    # access token of the user issued so far. The user's other sessions keep
                    # their refresh tokens and get a fresh access token on their next refresh.
                    await self._revoke_family(uow, token.family_id)
                    await uow.conn.execute(
                        update(tables.users)
                        .where(tables.users.c.id == token.user_id)
                        .values(
                            token_version=tables.users.c.token_version + 1, updated_at=func.now()
                        )
                    )
                    uow.account_changed(token.user_id)
                    await uow.audit_and_emit(
                        "session.reuse_detected",
                        f"users/{token.user_id}",
                        SESSION_FAMILY_REVOKED,
                        token.user_id,
                        session_payload(token.user_id),
                        outcome="failure",
                        details={"family_id": str(token.family_id)},
                        actor_id=token.user_id,
                    )
                    reuse_detected = True
            elif token.expires_at <= dt.datetime.now(dt.UTC):
                raise Unauthenticated("refresh token expired")
            else:
                user = (
                    await uow.conn.execute(
                        select(tables.users).where(tables.users.c.id == token.user_id)
                    )
                ).one()
                if user.disabled:
                    raise Unauthenticated("account disabled")
                await uow.conn.execute(
                    update(tables.refresh_tokens)
                    .where(tables.refresh_tokens.c.id == token.id)
                    .values(used_at=func.now())
                )
                refresh = await self._new_refresh_token(uow, user.id, token.family_id)
                await uow.audit_and_emit(
                    "session.refresh",
                    f"users/{user.id}",
                    SESSION_REFRESHED,
                    user.id,
                    session_payload(user.id),
                    actor_id=user.id,
                )
        if reuse_detected or token.revoked_at is not None:
            # Raised after the commit, so the family's revocation stands.
            raise Unauthenticated("refresh token already used or revoked")
        return identity_pb2.RefreshSessionResponse(
            access_token=self.tokens.issue(user.id, user.role, user.token_version),
            refresh_token=self._hand_over(refresh, by_cookie, context),
            expires_in=self.tokens.ttl_s,
            token_type="Bearer",
            consistency_token=uow.consistency_token,
        )

    async def RevokeSession(
        self,
        request: identity_pb2.RevokeSessionRequest,
        context: Ctx = None,
    ) -> identity_pb2.RevokeSessionResponse:
        caller = current_call().principal
        if caller is None:
            raise Unauthenticated("this method requires an access token")
        by_cookie = _by_cookie(request.refresh_token_delivery, context)
        presented = request.refresh_token
        if by_cookie and not presented and context is not None:
            presented = self.cookie.read(context.invocation_metadata() or ())
        if not presented and not request.all_sessions:
            if by_cookie:
                # Logging out without a session cookie: nothing to revoke, and nothing to say
                # but "logged out" (the browser is told to forget any cookie all the same).
                assert context is not None
                context.set_trailing_metadata(self.cookie.clear())
                return identity_pb2.RevokeSessionResponse()
            raise InvalidArgument(
                [FieldViolation("refresh_token", "is required unless all_sessions is set")]
            )
        async with self.db.transaction() as uow:
            if request.all_sessions:
                # Bumping token_version invalidates every access token issued so far.
                await self._change_user(uow, caller.user_id)
                await uow.audit("session.revoke_all", f"users/{caller.user_id}")
            else:
                token = (
                    await uow.conn.execute(
                        select(tables.refresh_tokens).where(
                            tables.refresh_tokens.c.token_hash == hash_refresh_token(presented)
                        )
                    )
                ).first()
                if token is None or token.user_id != caller.user_id:
                    raise NotFound("session", "refresh token")
                await self._revoke_family(uow, token.family_id)
                await uow.audit("session.revoke", f"users/{caller.user_id}")
            await uow.emit(SESSION_REVOKED, caller.user_id, session_payload(caller.user_id))
        if by_cookie:
            assert context is not None
            context.set_trailing_metadata(self.cookie.clear())
        return identity_pb2.RevokeSessionResponse(consistency_token=uow.consistency_token)

    async def SetUserRole(
        self, request: identity_pb2.SetUserRoleRequest, context: Ctx = None
    ) -> identity_pb2.SetUserRoleResponse:
        user_id = parse_uuid(request.user_id, "user_id")
        role = ROLE_NAMES.get(request.role)
        if role is None:
            raise InvalidArgument([FieldViolation("role", "must be STUDENT, INSTRUCTOR or ADMIN")])

        async def set_role(uow: UnitOfWork) -> identity_pb2.SetUserRoleResponse:
            row = await self._change_user(uow, user_id, role=role)
            await uow.audit_and_emit(
                "user.role_change",
                f"users/{user_id}",
                USER_ROLE_CHANGED,
                user_id,
                user_payload(row),
                details={"role": role},
            )
            return identity_pb2.SetUserRoleResponse(
                user=user_message(row), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, identity_pb2.SetUserRoleResponse, set_role
        )

    async def SetUserDisabled(
        self,
        request: identity_pb2.SetUserDisabledRequest,
        context: Ctx = None,
    ) -> identity_pb2.SetUserDisabledResponse:
        user_id = parse_uuid(request.user_id, "user_id")
        caller = current_call().principal
        if caller is not None and caller.user_id == user_id and request.disabled:
            raise PermissionDenied("admins cannot disable their own account")

        async def set_disabled(uow: UnitOfWork) -> identity_pb2.SetUserDisabledResponse:
            row = await self._change_user(uow, user_id, disabled=request.disabled)
            action = "user.disable" if request.disabled else "user.enable"
            await uow.audit_and_emit(
                action,
                f"users/{user_id}",
                USER_DISABLED if request.disabled else USER_ENABLED,
                user_id,
                user_payload(row),
            )
            return identity_pb2.SetUserDisabledResponse(
                user=user_message(row), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, identity_pb2.SetUserDisabledResponse, set_disabled
        )

    async def UpdateCurrentUser(
        self, request: identity_pb2.UpdateCurrentUserRequest, context: Ctx = None
    ) -> identity_pb2.UpdateCurrentUserResponse:
        caller = current_call().principal
        if caller is None:
            raise Unauthenticated("this method requires an access token")
        paths = mask_paths(request.update_mask.paths, PROFILE_MASK_PATHS)
        values = profile_values(request.user, paths)
        user_id = caller.user_id

        async def change(uow: UnitOfWork) -> identity_pb2.UpdateCurrentUserResponse:
            # A profile is not what authenticates anyone: no session is touched.
            row = (
                await uow.conn.execute(
                    update(tables.users)
                    .where(tables.users.c.id == user_id)
                    .values(**values, updated_at=func.now())
                    .returning(*tables.users.c)
                )
            ).first()
            if row is None:
                raise NotFound("user", str(user_id))
            await uow.audit_and_emit(
                "user.profile_change",
                f"users/{user_id}",
                USER_PROFILE_CHANGED,
                user_id,
                user_payload(row),
                details={"fields": sorted(values)},
            )
            return identity_pb2.UpdateCurrentUserResponse(
                user=user_message(row), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, identity_pb2.UpdateCurrentUserResponse, change
        )

    async def ChangePassword(
        self, request: identity_pb2.ChangePasswordRequest, context: Ctx = None
    ) -> identity_pb2.ChangePasswordResponse:
        caller = current_call().principal
        if caller is None:
            raise Unauthenticated("this method requires an access token")
        by_cookie = _by_cookie(request.refresh_token_delivery, context)
        violations: list[FieldViolation] = []
        if not request.current_password:
            violations.append(FieldViolation("current_password", "is required"))
        if (bad := password_violation(request.new_password, "new_password")) is not None:
            violations.append(bad)
        elif request.new_password == request.current_password:
            violations.append(
                FieldViolation("new_password", "must differ from the current password")
            )
        if violations:
            raise InvalidArgument(violations)
        async with self.db.engine.connect() as conn:
            user = (
                await conn.execute(select(tables.users).where(tables.users.c.id == caller.user_id))
            ).first()
        if user is None:
            raise NotFound("user", str(caller.user_id))
        # Guessing the password with a stolen access token costs as much as guessing it at
        # the login form: the same per-account and per-(account, address) failure budgets.
        address = current_call().client_address
        await self.rate_limiter.check_login(user.email, address)
        if not await self.hasher.verify(request.current_password, user.password_hash):
            await self.rate_limiter.login_failed(user.email, address)
            await self.db.audit_alone(
                "user.change_password",
                f"users/{user.id}",
                "failure",
                {"reason": "wrong current password"},
                actor_id=user.id,
            )
            raise InvalidArgument(
                [FieldViolation("current_password", "does not match the current password")]
            )
        new_hash = await self.hasher.hash(request.new_password)

        async with self.db.transaction() as uow:
            # Only over the hash just verified: a concurrent change wins, this one is refused.
            row = (
                await uow.conn.execute(
                    update(tables.users)
                    .where(
                        tables.users.c.id == user.id,
                        tables.users.c.password_hash == user.password_hash,
                    )
                    .values(password_hash=new_hash)
                    .returning(tables.users.c.id)
                )
            ).first()
            if row is None:
                raise FailedPrecondition(
                    "PASSWORD",
                    f"users/{user.id}",
                    "the password was changed meanwhile; sign in again with the new one",
                )
            # Every session ends (token_version bump, refresh tokens revoked), then one new
            # session is opened for the caller.
            changed = await self._change_user(uow, user.id)
            refresh = await self._new_refresh_token(uow, user.id, family_id=uuid.uuid4())
            await uow.audit_and_emit(
                "user.change_password",
                f"users/{user.id}",
                SESSION_PASSWORD_CHANGED,
                user.id,
                session_payload(user.id),
                actor_id=user.id,
            )
        return identity_pb2.ChangePasswordResponse(
            access_token=self.tokens.issue(changed.id, changed.role, changed.token_version),
            refresh_token=self._hand_over(refresh, by_cookie, context),
            expires_in=self.tokens.ttl_s,
            token_type="Bearer",
            consistency_token=uow.consistency_token,
        )

    async def CreatePasswordReset(
        self, request: identity_pb2.CreatePasswordResetRequest, context: Ctx = None
    ) -> identity_pb2.CreatePasswordResetResponse:
        email = normalise_email(request.email)
        if (bad := email_violation(email)) is not None:
            raise InvalidArgument([bad])
        # Per address, whether or not it has an account: refusing tells nothing.
        await self.rate_limiter.hit_password_reset_email(email)
        # Every request does the same work whatever the outcome (no early return): one
        # look-up, one per-account budget hit, one token row, one mail rendered and written,
        # one audit row. Without a usable account (unknown, disabled, budget spent) the token
        # has no account (it can confirm nothing) and the mail job is written `suppressed`.
        token, token_hash = new_account_token()

        async def request_reset(
            uow: UnitOfWork,
        ) -> identity_pb2.CreatePasswordResetResponse:
            user = (
                await uow.conn.execute(
                    select(tables.users).where(func.lower(tables.users.c.email) == email)
                )
            ).first()
            budget_key = str(user.id) if user is not None else f"unknown:{email}"
            within = await self.rate_limiter.within_password_reset_account(budget_key)
            account = user if user is not None and not user.disabled and within else None
            await self._new_account_token(
                uow, PASSWORD_RESET, account.id if account else None, email, token_hash
            )
            # Rendered and written either way; only a usable account's job is ever sent.
            url = link(self.settings.public_url, RESET_PATH, token)
            name = account.display_name if account is not None else "there"
            mail = password_reset_mail(name, url, self.settings.password_reset_ttl_s)
            await enqueue(
                uow, mail, email, account.id if account else None, send=account is not None
            )
            if account is not None:
                reason = "mailed"
            elif user is None:
                reason = "unknown email"
            else:
                reason = "disabled" if user.disabled else "account budget spent"
            await uow.audit(
                "password_reset.request",
                f"users/{user.id}" if user is not None else "users/-",
                "success" if account is not None else "ignored",
                {"reason": reason, "email_sha256": _digest(email)},
                actor_id=user.id if user is not None else None,
            )
            return identity_pb2.CreatePasswordResetResponse(consistency_token=uow.consistency_token)

        # A retry with the same request id mails nothing more: it gets the first answer.
        return await self.db.run_command(
            request, request.request_id, identity_pb2.CreatePasswordResetResponse, request_reset
        )

    async def ConfirmPasswordReset(
        self, request: identity_pb2.ConfirmPasswordResetRequest, context: Ctx = None
    ) -> identity_pb2.ConfirmPasswordResetResponse:
        violations: list[FieldViolation] = []
        if not ACCOUNT_TOKEN_RE.match(request.token):
            violations.append(FieldViolation("token", BAD_TOKEN))
        if (bad := password_violation(request.new_password, "new_password")) is not None:
            violations.append(bad)
        if violations:
            raise InvalidArgument(violations)
        token_hash = hash_account_token(request.token)
        # A cheap look first, so that a wrong token costs no bcrypt hash; the token is
        # consumed below, in the transaction that sets the password. Not with a request id:
        # its retry presents a token the first call used, and must get the first answer.
        if not request.request_id and not await self._usable_token(PASSWORD_RESET, token_hash):
            await self._token_refused("password_reset.confirm", "unknown, used or expired")
        new_hash = await self.hasher.hash(request.new_password)

        async def confirm(uow: UnitOfWork) -> identity_pb2.ConfirmPasswordResetResponse:
            user_id = await self._consume_token(uow, PASSWORD_RESET, token_hash)
            changed = None
            if user_id is not None:
                changed = (
                    await uow.conn.execute(
                        update(tables.users)
                        .where(tables.users.c.id == user_id, tables.users.c.disabled.is_(False))
                        .values(
                            password_hash=new_hash,
                            # The link came by mail: the address is the owner's.
                            email_verified_at=func.coalesce(
                                tables.users.c.email_verified_at, func.now()
                            ),
                        )
                        .returning(tables.users.c.id)
                    )
                ).first()
            if changed is None or user_id is None:
                # Used meanwhile (a concurrent confirmation won), or disabled: nothing is
                # written, and the refusal is audited outside this (rolled back) transaction.
                raise _TokenRefused("used meanwhile or disabled")
            # Every session ends: token_version bump, refresh tokens revoked. Other unused
            # reset links of the account die with the old password.
            row = await self._change_user(uow, user_id)
            await uow.conn.execute(
                update(tables.account_tokens)
                .where(
                    tables.account_tokens.c.user_id == user_id,
                    tables.account_tokens.c.purpose == PASSWORD_RESET,
                    tables.account_tokens.c.used_at.is_(None),
                )
                .values(used_at=func.now())
            )
            await uow.audit_and_emit(
                "password_reset.confirm",
                f"users/{user_id}",
                SESSION_PASSWORD_CHANGED,
                user_id,
                session_payload(user_id),
                actor_id=user_id,
            )
            await uow.emit(USER_EMAIL_VERIFIED, user_id, user_payload(row))
            return identity_pb2.ConfirmPasswordResetResponse(
                consistency_token=uow.consistency_token
            )

        try:
            return await self.db.run_command(
                request, request.request_id, identity_pb2.ConfirmPasswordResetResponse, confirm
            )
        except _TokenRefused as refused:
            await self._token_refused("password_reset.confirm", refused.reason)

    async def ConfirmEmailVerification(
        self, request: identity_pb2.ConfirmEmailVerificationRequest, context: Ctx = None
    ) -> identity_pb2.ConfirmEmailVerificationResponse:
        if not ACCOUNT_TOKEN_RE.match(request.token):
            raise InvalidArgument([FieldViolation("token", BAD_TOKEN)])
        token_hash = hash_account_token(request.token)

        async def confirm(uow: UnitOfWork) -> identity_pb2.ConfirmEmailVerificationResponse:
            user_id = await self._consume_token(uow, EMAIL_VERIFICATION, token_hash)
            if user_id is None:
                raise _TokenRefused("unknown, used or expired")
            row = (
                await uow.conn.execute(
                    update(tables.users)
                    .where(tables.users.c.id == user_id)
                    .values(
                        email_verified_at=func.coalesce(
                            tables.users.c.email_verified_at, func.now()
                        ),
                        updated_at=func.now(),
                    )
                    .returning(*tables.users.c)
                )
            ).one()
            await uow.audit_and_emit(
                "user.verify_email",
                f"users/{user_id}",
                USER_EMAIL_VERIFIED,
                user_id,
                user_payload(row),
                actor_id=user_id,
            )
            return identity_pb2.ConfirmEmailVerificationResponse(
                consistency_token=uow.consistency_token
            )

        try:
            return await self.db.run_command(
                request, request.request_id, identity_pb2.ConfirmEmailVerificationResponse, confirm
            )
        except _TokenRefused as refused:
            await self._token_refused("user.verify_email", refused.reason)

    async def SendVerificationEmail(
        self, request: identity_pb2.SendVerificationEmailRequest, context: Ctx = None
    ) -> identity_pb2.SendVerificationEmailResponse:
        caller = current_call().principal
        if caller is None:
            raise Unauthenticated("this method requires an access token")
        token, token_hash = new_account_token()

        async def send(uow: UnitOfWork) -> identity_pb2.SendVerificationEmailResponse:
            assert caller is not None
            user = (
                await uow.conn.execute(
                    select(tables.users).where(tables.users.c.id == caller.user_id)
                )
            ).first()
            if user is None:
                raise NotFound("user", str(caller.user_id))
            if user.email_verified_at is not None:
                raise FailedPrecondition(
                    "EMAIL_VERIFIED", f"users/{user.id}", "the email address is already verified"
                )
            await self.rate_limiter.hit_verification_email(str(user.id))
            await self._new_account_token(uow, EMAIL_VERIFICATION, user.id, user.email, token_hash)
            url = link(self.settings.public_url, VERIFY_PATH, token)
            mail = verification_mail(user.display_name, url, self.settings.email_verification_ttl_s)
            await enqueue(uow, mail, user.email, user.id)
            await uow.audit("user.send_verification_email", f"users/{user.id}")
            return identity_pb2.SendVerificationEmailResponse(
                consistency_token=uow.consistency_token
            )

        # A retry with the same request id mails nothing more: it gets the first answer.
        return await self.db.run_command(
            request, request.request_id, identity_pb2.SendVerificationEmailResponse, send
        )

    async def GetSigningKeys(
        self,
        request: identity_pb2.GetSigningKeysRequest,
        context: Ctx = None,
    ) -> identity_pb2.GetSigningKeysResponse:
        return identity_pb2.GetSigningKeysResponse(
            keys=[identity_pb2.JsonWebKey(**jwk) for jwk in self.tokens.jwks()]
        )

    async def _change_user(self, uow: UnitOfWork, user_id: uuid.UUID, **values: Any) -> Any:
        """Update a user and revoke every session: bumping token_version invalidates access
        tokens at once, and the refresh tokens are revoked."""
        row = (
            await uow.conn.execute(
                update(tables.users)
                .where(tables.users.c.id == user_id)
                .values(
                    **values,
                    token_version=tables.users.c.token_version + 1,
                    updated_at=func.now(),
                )
                .returning(*tables.users.c)
            )
        ).first()
        if row is None:
            raise NotFound("user", str(user_id))
        uow.account_changed(user_id)
        await uow.conn.execute(
            update(tables.refresh_tokens)
            .where(
                tables.refresh_tokens.c.user_id == user_id,
                tables.refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=func.now())
        )
        return row

    def _hand_over(self, refresh: str, by_cookie: bool, context: Ctx) -> str:
        """The refresh token for the response body, or "" once it is set as the cookie."""
        if not by_cookie:
            return refresh
        assert context is not None  # _by_cookie refused a cookie without a call
        context.set_trailing_metadata(self.cookie.set(refresh))
        return ""

    async def _new_refresh_token(
        self, uow: UnitOfWork, user_id: uuid.UUID, family_id: uuid.UUID
    ) -> str:
        token, token_hash = new_refresh_token()
        await uow.conn.execute(
            insert(tables.refresh_tokens).values(
                id=uuid.uuid4(),
                family_id=family_id,
                user_id=user_id,
                token_hash=token_hash,
                expires_at=dt.datetime.now(dt.UTC) + self.refresh_ttl,
            )
        )
        return token

    async def _new_account_token(
        self,
        uow: UnitOfWork,
        purpose: str,
        user_id: uuid.UUID | None,
        email: str,
        token_hash: bytes,
    ) -> None:
        ttl_s = (
            self.settings.password_reset_ttl_s
            if purpose == PASSWORD_RESET
            else self.settings.email_verification_ttl_s
        )
        await uow.conn.execute(
            insert(tables.account_tokens).values(
                id=uuid.uuid4(),
                purpose=purpose,
                user_id=user_id,
                email=email,
                token_hash=token_hash,
                # From the transaction's clock, like created_at: the lifetime is exact.
                expires_at=func.now() + dt.timedelta(seconds=ttl_s),
            )
        )

    async def _usable_token(self, purpose: str, token_hash: bytes) -> bool:
        async with self.db.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(tables.account_tokens.c.id).where(*_usable(purpose, token_hash))
                )
            ).first()
        return found is not None

    async def _consume_token(
        self, uow: UnitOfWork, purpose: str, token_hash: bytes
    ) -> uuid.UUID | None:
        """Marks the token used and returns its account, or None when it is unknown, used or
        expired. One UPDATE: of two concurrent confirmations, the second waits for the
        first's row lock, then finds `used_at` set and matches nothing."""
        row = (
            await uow.conn.execute(
                update(tables.account_tokens)
                .where(*_usable(purpose, token_hash))
                .values(used_at=func.now())
                .returning(tables.account_tokens.c.user_id)
            )
        ).first()
        return row.user_id if row is not None else None

    async def _token_refused(self, action: str, reason: str) -> NoReturn:
        await self.db.audit_alone(action, "users/-", "failure", {"reason": reason})
        raise InvalidArgument([FieldViolation("token", BAD_TOKEN)])

    async def _revoke_family(self, uow: UnitOfWork, family_id: uuid.UUID) -> None:
        await uow.conn.execute(
            update(tables.refresh_tokens)
            .where(
                tables.refresh_tokens.c.family_id == family_id,
                tables.refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=func.now())
        )


def _usable(purpose: str, token_hash: bytes) -> tuple[Any, ...]:
    """A token that confirms something: this purpose, an account, unused, not expired."""
    c = tables.account_tokens.c
    return (
        c.token_hash == token_hash,
        c.purpose == purpose,
        c.user_id.is_not(None),
        c.used_at.is_(None),
        c.expires_at > func.now(),
    )


class _TokenRefused(Exception):
    """A mailed link's token that cannot be used: the transaction that looked is rolled back,
    then the refusal is audited and answered (`_token_refused`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _by_cookie(delivery: int, context: Ctx) -> bool:
    """Whether the refresh token travels as a cookie; only a real call has metadata for one."""
    if delivery not in identity_pb2.RefreshTokenDelivery.values():
        raise InvalidArgument(
            [FieldViolation("refresh_token_delivery", f"has no value {delivery}")]
        )
    if delivery != identity_pb2.REFRESH_TOKEN_DELIVERY_COOKIE:
        return False
    if context is None:
        raise InvalidArgument(
            [FieldViolation("refresh_token_delivery", "COOKIE needs a call with metadata")]
        )
    return True


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]
