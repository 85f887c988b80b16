"""Comment queries: a lesson's threads, oldest first, each followed by its replies."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING

from learnflow.context import Ctx
from learnflow.queries.catalog import visible_lesson
from learnflow.queries.pagination import decode_token, encode_token, page_size
from learnflow.queries.read_models import ReadModels
from learnflow.v1 import discussion_pb2, discussion_pb2_grpc
from learnflow.values import parse_timestamp


def comment_message(doc: dict[str, Any]) -> discussion_pb2.Comment:
    return discussion_pb2.Comment(
        id=doc["_id"],
        course_id=doc["course_id"],
        lesson_id=doc["lesson_id"],
        parent_id=doc["parent_id"],
        author_id=doc["author_id"],
        author_name=doc["author_name"],
        body="" if doc["deleted"] else doc["body"],
        deleted=doc["deleted"],
        create_time=parse_timestamp(doc["created_at"]),
        update_time=parse_timestamp(doc["updated_at"]),
    )


class CommentQueries(discussion_pb2_grpc.CommentQueryServiceServicer):
    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    async def ListComments(
        self, request: discussion_pb2.ListCommentsRequest, context: Ctx = None
    ) -> discussion_pb2.ListCommentsResponse:
        size = page_size(request.page_size, 50)
        db = await self.read_models.database()
        await visible_lesson(self.read_models, db, request.course_id, request.lesson_id)
        scope = f"comments|{request.lesson_id}"
        after = decode_token(request.page_token, scope)
        query: dict[str, Any] = {"lesson_id": request.lesson_id}
        if after is not None:
            query["sort_key"] = {"$gt": str(after)}
        docs = (
            await db["comments"]
            .find(query)
            .sort([("sort_key", ASCENDING)])
            .limit(size + 1)
            .to_list()
        )
        response = discussion_pb2.ListCommentsResponse(
            comments=[comment_message(doc) for doc in docs[:size]]
        )
        if len(docs) > size:
            response.next_page_token = encode_token(docs[size - 1]["sort_key"], scope)
        return response
