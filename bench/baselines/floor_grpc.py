"""The floor: a plain grpc.aio server answering CatalogService.GetCourse and GetLesson with a
constant reply.

    python bench/baselines/floor_grpc.py --listen 127.0.0.1:50090 \\
        --mongo-url mongodb://127.0.0.1:57018/ --database learnflow_g1 \\
        --course-id <uuid> --lesson-id <uuid>

The replies are the real response messages, filled once at start from the read-model
documents (same conversion as `learnflow.queries.catalog`); after that no database, no
interceptor, no authentication: what `grpc.aio` itself costs for these two RPCs. Every other
CatalogService method answers UNIMPLEMENTED. Run as its own process by bench/read_path.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

import grpc
from pymongo import MongoClient

from learnflow.queries.catalog import course_message, lesson_message
from learnflow.v1 import courses_pb2, courses_pb2_grpc


def replies(
    mongo_url: str, database: str, course_id: str, lesson_id: str
) -> tuple[courses_pb2.GetCourseResponse, courses_pb2.GetLessonResponse]:
    """The two responses, built once from the read model (a student's view: no quiz answers)."""
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
    try:
        db = client[database]
        course = db["courses"].find_one({"_id": course_id})
        lesson = db["lessons"].find_one({"_id": lesson_id})
    finally:
        client.close()
    if course is None or lesson is None:
        raise SystemExit(f"floor: course {course_id} or lesson {lesson_id} not in {database}")
    get_course = courses_pb2.GetCourseResponse(
        course=course_message(course),
        lessons=[
            courses_pb2.LessonSummary(
                id=e["id"], title=e["title"], position=e["position"], content_type=e["content_type"]
            )
            for e in course.get("outline", [])
        ],
    )
    get_lesson = courses_pb2.GetLessonResponse(lesson=lesson_message(lesson, None))
    return get_course, get_lesson


class ConstantCatalog(courses_pb2_grpc.CatalogServiceServicer):
    def __init__(
        self, course: courses_pb2.GetCourseResponse, lesson: courses_pb2.GetLessonResponse
    ) -> None:
        self.course = course
        self.lesson = lesson

    async def ListCourses(
        self, request: courses_pb2.ListCoursesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> courses_pb2.ListCoursesResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor answers two RPCs only")

    async def ListAuthoredCourses(
        self,
        request: courses_pb2.ListAuthoredCoursesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> courses_pb2.ListAuthoredCoursesResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor answers two RPCs only")

    async def GetCourse(
        self, request: courses_pb2.GetCourseRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> courses_pb2.GetCourseResponse:
        return self.course

    async def GetCourseBySlug(
        self,
        request: courses_pb2.GetCourseBySlugRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> courses_pb2.GetCourseBySlugResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor answers two RPCs only")

    async def GetLesson(
        self, request: courses_pb2.GetLessonRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> courses_pb2.GetLessonResponse:
        return self.lesson


async def serve(listen: str, servicer: ConstantCatalog) -> None:
    server = grpc.aio.server()
    courses_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)
    if server.add_insecure_port(listen) == 0:
        raise SystemExit(f"floor: cannot listen on {listen}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"floor: serving on {listen}", flush=True)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--mongo-url", required=True)
    parser.add_argument("--database", required=True, help="the active read-model generation")
    parser.add_argument("--course-id", required=True)
    parser.add_argument("--lesson-id", required=True)
    args = parser.parse_args()
    course, lesson = replies(args.mongo_url, args.database, args.course_id, args.lesson_id)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, ConstantCatalog(course, lesson)))


if __name__ == "__main__":
    main()
