"""Discussion commands: comments on a lesson, threaded by `parent_id`, edited by their author,
soft-deleted by their author or course staff (the owner, admins)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from learnflow.commands.course_records import load_course, load_lesson
from learnflow.commands.requests import caller, parse_ids
from learnflow.context import Ctx, Principal
from learnflow.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from learnflow.events import COMMENT_CREATED, COMMENT_DELETED, COMMENT_UPDATED, CommentPayload
from learnflow.storage import tables
from learnflow.storage.unit_of_work import Database, UnitOfWork
from learnflow.v1 import discussion_pb2, discussion_pb2_grpc
from learnflow.values import timestamp
from learnflow.vocabulary import ENROLLED_STATES, is_course_staff, lesson_name

MAX_BODY = 10_000


def comment_name(course_id: uuid.UUID | str, lesson_id: uuid.UUID | str, comment_id: Any) -> str:
    return f"{lesson_name(course_id, lesson_id)}/comments/{comment_id}"


def _body(body: str, violations: list[FieldViolation] | None = None) -> str:
    """The trimmed body; its violation is appended to `violations` when given, else raised."""
    text = body.strip()
    if not 1 <= len(text) <= MAX_BODY:
        violation = FieldViolation("body", "must be 1 to 10,000 characters")
        if violations is None:
            raise InvalidArgument([violation])
        violations.append(violation)
    return text


def comment_payload(row: Any, author_name: str) -> CommentPayload:
    return {
        "id": str(row.id),
        "course_id": str(row.course_id),
        "lesson_id": str(row.lesson_id),
        "parent_id": str(row.parent_id) if row.parent_id else "",
        "author_id": str(row.author_id),
        "author_name": author_name,
        "body": "" if row.deleted else row.body,
        "deleted": row.deleted,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def comment_message(row: Any, author_name: str) -> discussion_pb2.Comment:
    return discussion_pb2.Comment(
        id=str(row.id),
        course_id=str(row.course_id),
        lesson_id=str(row.lesson_id),
        parent_id=str(row.parent_id) if row.parent_id else "",
        author_id=str(row.author_id),
        author_name=author_name,
        body="" if row.deleted else row.body,
        deleted=row.deleted,
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
    )


async def _author_name(conn: AsyncConnection, user_id: uuid.UUID) -> str:
    name = (
        await conn.execute(select(tables.users.c.display_name).where(tables.users.c.id == user_id))
    ).scalar()
    return str(name or "")


async def _lock_comment(
    conn: AsyncConnection, course_id: uuid.UUID, lesson_id: uuid.UUID, comment_id: uuid.UUID
) -> Any:
    comment = (
        await conn.execute(
            select(tables.comments)
            .where(
                tables.comments.c.id == comment_id,
                tables.comments.c.lesson_id == lesson_id,
                tables.comments.c.course_id == course_id,
            )
            .with_for_update()
        )
    ).first()
    if comment is None:
        raise NotFound("comment", comment_name(course_id, lesson_id, comment_id))
    return comment


async def _may_post(conn: AsyncConnection, course: Any, principal: Principal) -> bool:
    if is_course_staff(principal, course.owner_id):
        return True
    state = (
        await conn.execute(
            select(tables.enrollments.c.state).where(
                tables.enrollments.c.course_id == course.id,
                tables.enrollments.c.user_id == principal.user_id,
            )
        )
    ).scalar()
    return state in ENROLLED_STATES


class DiscussionCommands(discussion_pb2_grpc.DiscussionServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def CreateComment(
        self, request: discussion_pb2.CreateCommentRequest, context: Ctx = None
    ) -> discussion_pb2.CreateCommentResponse:
        principal = caller()
        # Every malformed field is reported at once, not the first one found.
        violations: list[FieldViolation] = []
        body = _body(request.body, violations)
        ids = [("course_id", request.course_id), ("lesson_id", request.lesson_id)]
        if request.parent_id:
            ids.append(("parent_id", request.parent_id))
        try:
            parsed = parse_ids(*ids)
        except InvalidArgument as error:
            violations = error.violations + violations
        if violations:
            raise InvalidArgument(violations)
        course_id, lesson_id = parsed[0], parsed[1]
        parent_id = parsed[2] if request.parent_id else None

        async def create(uow: UnitOfWork) -> discussion_pb2.CreateCommentResponse:
            course = await load_course(uow.conn, course_id, principal)
            await load_lesson(uow.conn, course_id, lesson_id)
            if not await _may_post(uow.conn, course, principal):
                raise PermissionDenied(
                    "only learners enrolled in the course and its staff may post here"
                )
            if parent_id is not None:
                parent = (
                    await uow.conn.execute(
                        select(tables.comments.c.id).where(
                            tables.comments.c.id == parent_id,
                            tables.comments.c.lesson_id == lesson_id,
                            tables.comments.c.course_id == course_id,
                        )
                    )
                ).first()
                if parent is None:
                    raise InvalidArgument(
                        [FieldViolation("parent_id", "must be a comment on the same lesson")]
                    )
            comment_id = uuid.uuid4()
            row = (
                await uow.conn.execute(
                    insert(tables.comments)
                    .values(
                        id=comment_id,
                        course_id=course_id,
                        lesson_id=lesson_id,
                        parent_id=parent_id,
                        author_id=principal.user_id,
                        body=body,
                        deleted=False,
                    )
                    .returning(*tables.comments.c)
                )
            ).one()
            author = await _author_name(uow.conn, principal.user_id)
            await uow.audit_and_emit(
                "comment.create",
                comment_name(course_id, lesson_id, comment_id),
                COMMENT_CREATED,
                comment_id,
                comment_payload(row, author),
            )
            return discussion_pb2.CreateCommentResponse(
                comment=comment_message(row, author), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, discussion_pb2.CreateCommentResponse, create
        )

    async def UpdateComment(
        self, request: discussion_pb2.UpdateCommentRequest, context: Ctx = None
    ) -> discussion_pb2.UpdateCommentResponse:
        principal = caller()
        violations: list[FieldViolation] = []
        unknown = sorted(set(request.update_mask.paths) - {"body"})
        if unknown:
            violations.append(
                FieldViolation("update_mask", f"only body is updatable, not {', '.join(unknown)}")
            )
        body = _body(request.body, violations)
        try:
            course_id, lesson_id, comment_id = parse_ids(
                ("course_id", request.course_id),
                ("lesson_id", request.lesson_id),
                ("comment_id", request.comment_id),
            )
        except InvalidArgument as error:
            violations = error.violations + violations
        if violations:
            raise InvalidArgument(violations)

        async def edit(uow: UnitOfWork) -> discussion_pb2.UpdateCommentResponse:
            await load_course(uow.conn, course_id, principal)
            comment = await _lock_comment(uow.conn, course_id, lesson_id, comment_id)
            name = comment_name(course_id, lesson_id, comment_id)
            if comment.author_id != principal.user_id:
                raise PermissionDenied("only its author may edit a comment")
            if comment.deleted:
                raise FailedPrecondition(
                    "COMMENT_STATE", name, "a deleted comment cannot be edited"
                )
            row = (
                await uow.conn.execute(
                    update(tables.comments)
                    .where(tables.comments.c.id == comment_id)
                    .values(body=body, updated_at=func.now())
                    .returning(*tables.comments.c)
                )
            ).one()
            author = await _author_name(uow.conn, row.author_id)
            await uow.audit_and_emit(
                "comment.update", name, COMMENT_UPDATED, comment_id, comment_payload(row, author)
            )
            return discussion_pb2.UpdateCommentResponse(
                comment=comment_message(row, author), consistency_token=uow.consistency_token
            )

        return await self.db.run_command(
            request, request.request_id, discussion_pb2.UpdateCommentResponse, edit
        )

    async def DeleteComment(
        self, request: discussion_pb2.DeleteCommentRequest, context: Ctx = None
    ) -> discussion_pb2.DeleteCommentResponse:
        principal = caller()
        course_id, lesson_id, comment_id = parse_ids(
            ("course_id", request.course_id),
            ("lesson_id", request.lesson_id),
            ("comment_id", request.comment_id),
        )

        async def remove(uow: UnitOfWork) -> discussion_pb2.DeleteCommentResponse:
            course = await load_course(uow.conn, course_id, principal)
            comment = await _lock_comment(uow.conn, course_id, lesson_id, comment_id)
            name = comment_name(course_id, lesson_id, comment_id)
            if comment.deleted:
                raise NotFound("comment", name)
            if comment.author_id != principal.user_id and not is_course_staff(
                principal, course.owner_id
            ):
                raise PermissionDenied("only its author or the course's staff may delete a comment")
            row = (
                await uow.conn.execute(
                    update(tables.comments)
                    .where(tables.comments.c.id == comment_id)
                    .values(deleted=True, updated_at=func.now())
                    .returning(*tables.comments.c)
                )
            ).one()
            author = await _author_name(uow.conn, row.author_id)
            await uow.audit_and_emit(
                "comment.delete",
                name,
                COMMENT_DELETED,
                comment_id,
                comment_payload(row, author),
                details={"moderated": row.author_id != principal.user_id},
            )
            return discussion_pb2.DeleteCommentResponse(consistency_token=uow.consistency_token)

        return await self.db.run_command(
            request, request.request_id, discussion_pb2.DeleteCommentResponse, remove
        )
