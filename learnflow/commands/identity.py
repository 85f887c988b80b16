"""Identity commands: accounts, sessions (login, refresh rotation, logout), roles."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from learnflow.commands.course_input import is_https_url, mask_paths
from learnflow.context import Ctx, current_call
from learnflow.errors import (
    AlreadyExists,
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
    USER_ENABLED,
    USER_PROFILE_CHANGED,
    USER_REGISTERED,
    USER_ROLE_CHANGED,
    SessionPayload,
    UserPayload,
)
from learnflow.security.passwords import PasswordHasher, password_violation
from learnflow.security.rate_limits import RateLimiter
from learnflow.security.session_cookie import SessionCookie
from learnflow.security.tokens import TokenService, hash_refresh_token, new_refresh_token
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


class IdentityCommands(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(
        self,
        db: Database,
        hasher: PasswordHasher,
        tokens: TokenService,
        refresh_ttl_s: int,
        rate_limiter: RateLimiter,
        cookie: SessionCookie | None = None,
    ) -> None:
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
        if not EMAIL_RE.match(email) or len(email) > 254:
            violations.append(FieldViolation("email", "must be a valid email address"))
        if (bad := password_violation(request.password)) is not None:
            violations.append(bad)
        if not 1 <= len(display_name) <= 80:
            violations.append(FieldViolation("display_name", "must be 1 to 80 characters"))
        if violations:
            raise InvalidArgument(violations)
        password_hash = await self.hasher.hash(request.password)

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
                raise AlreadyExists(
                    "user", email, "an account with this email already exists"
                ) from None
            await uow.audit("user.register", f"users/{user_id}", actor_id=user_id)
            await uow.emit(USER_REGISTERED, user_id, user_payload(row))
            return identity_pb2.RegisterUserResponse(
                user=user_message(row), consistency_token=uow.consistency_token
            )

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
            await uow.audit("session.create", f"users/{user.id}", actor_id=user.id)
            await uow.emit(SESSION_CREATED, user.id, session_payload(user.id))
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
                    await uow.audit(
                        "session.reuse_detected",
                        f"users/{token.user_id}",
                        "failure",
                        {"family_id": str(token.family_id)},
                        actor_id=token.user_id,
                    )
                    await uow.emit(
                        SESSION_FAMILY_REVOKED,
                        token.user_id,
                        session_payload(token.user_id),
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
                await uow.audit("session.refresh", f"users/{user.id}", actor_id=user.id)
                await uow.emit(SESSION_REFRESHED, user.id, session_payload(user.id))
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
            await uow.audit("user.role_change", f"users/{user_id}", details={"role": role})
            await uow.emit(USER_ROLE_CHANGED, user_id, user_payload(row))
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
            await uow.audit(action, f"users/{user_id}")
            await uow.emit(
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
            await uow.audit(
                "user.profile_change", f"users/{user_id}", details={"fields": sorted(values)}
            )
            await uow.emit(USER_PROFILE_CHANGED, user_id, user_payload(row))
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
            await uow.audit("user.change_password", f"users/{user.id}", actor_id=user.id)
            await uow.emit(SESSION_PASSWORD_CHANGED, user.id, session_payload(user.id))
        return identity_pb2.ChangePasswordResponse(
            access_token=self.tokens.issue(changed.id, changed.role, changed.token_version),
            refresh_token=self._hand_over(refresh, by_cookie, context),
            expires_in=self.tokens.ttl_s,
            token_type="Bearer",
            consistency_token=uow.consistency_token,
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

    async def _revoke_family(self, uow: UnitOfWork, family_id: uuid.UUID) -> None:
        await uow.conn.execute(
            update(tables.refresh_tokens)
            .where(
                tables.refresh_tokens.c.family_id == family_id,
                tables.refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=func.now())
        )


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
