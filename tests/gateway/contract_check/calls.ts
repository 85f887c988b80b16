// Real calls of the LearnFlow HTTP API, typed by the client openapi-typescript generates from
// the gateway's /openapi.json (or `python scripts/openapi_document.py`). Compiled with
// `tsc --noEmit --strict`, nothing runs: it fails when the document stops typing what the
// gateway accepts and answers. See README.md here.
//
// `// @ts-expect-error` lines are calls the document must refuse: if one type-checks, the
// document lost a constraint and tsc reports the unused directive.
import type { components, operations, paths } from "./schema";

type Schemas = components["schemas"];
type JsonBody<Op> = Op extends {
  requestBody?: { content: { "application/json": infer Body } };
}
  ? Body
  : never;
type Ok<Op> = Op extends {
  responses: { 200: { content: { "application/json": infer Body } } };
}
  ? Body
  : never;
type Query<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
type Headers<Op> = Op extends { parameters: { header?: infer H } } ? NonNullable<H> : never;

// Schema names a generator keeps as they are: short, no dots. A message's response form keeps
// its name (`Lesson`); what a client sends of a message that is also answered is `LessonInput`.
export const status: Schemas["Status"] = { code: 3, message: "invalid", details: [] };

// PATCH bodies are partial: reordering a lesson sends only its position.
export const reorder: JsonBody<operations["CourseService_UpdateLesson"]> = { position: 1 };
export const retitle: JsonBody<operations["CourseService_UpdateCourse"]> = { title: "Go" };
export const profile: JsonBody<operations["IdentityService_UpdateCurrentUser"]> = {
  displayName: "Ada",
};
// ...and the update mask is a query parameter, on every PATCH.
export const lessonMask: Query<operations["CourseService_UpdateLesson"]> = {
  updateMask: "position",
};
export const commentMask: Query<operations["DiscussionService_UpdateComment"]> = {
  updateMask: "body",
};
// @ts-expect-error output-only fields are not part of an update
export const readOnlyInUpdate: JsonBody<operations["CourseService_UpdateCourse"]> = { slug: "x" };

// A create still needs what the contract marks REQUIRED.
export const course: JsonBody<operations["CourseService_CreateCourse"]> = {
  course: { title: "Rust" },
};
// @ts-expect-error `title` is required on create
export const untitled: JsonBody<operations["CourseService_CreateCourse"]> = { course: {} };

// Lesson content is a union: one kind at a time.
export const article: JsonBody<operations["CourseService_CreateLesson"]> = {
  lesson: { title: "Intro", article: { markdown: "# Hello" } },
};
export const quiz: Schemas["LessonInput"] = {
  title: "Check",
  quiz: { questions: [{ prompt: "2 + 2?", choices: ["3", "4"], correctChoiceIndexes: [1] }] },
};
// @ts-expect-error an article and a video at once
export const both: Schemas["LessonInput"] = {
  title: "x",
  article: { markdown: "a" },
  video: { url: "u" },
};

// @ts-expect-error a lesson answered by the server has an id, a position...: input is not output
export const sentIsNotAnswered: Schemas["Lesson"] = { title: "x", article: { markdown: "a" } };

export function contentKind(lesson: Schemas["Lesson"]): string {
  if (lesson.article !== undefined) return lesson.article.markdown;
  if (lesson.video !== undefined) return `${lesson.video.url} (${lesson.video.durationSeconds}s)`;
  if (lesson.quiz !== undefined) return String(lesson.quiz.questions.length);
  if (lesson.codeExercise !== undefined) return "code";
  return "none";
}

// Errors: details are a union told apart by `@type`.
export function fieldErrors(error: Schemas["Status"]): string[] {
  const out: string[] = [];
  for (const detail of error.details) {
    if (detail["@type"] === "type.googleapis.com/google.rpc.BadRequest") {
      for (const violation of detail.fieldViolations ?? []) {
        out.push(`${violation.field}: ${violation.description}`);
      }
    } else if (detail["@type"] === "type.googleapis.com/google.rpc.ErrorInfo") {
      out.push(detail.metadata?.allowedRoles ?? detail.reason ?? "");
    } else if (detail["@type"] === "type.googleapis.com/google.rpc.RetryInfo") {
      out.push(`retry in ${detail.retryDelay ?? "?"}`);
    }
  }
  return out;
}

// Headers described once: idempotency on writes, read-your-writes on reads.
export const idempotent: Headers<operations["CourseService_CreateCourse"]> = {
  "Idempotency-Key": "create-rust-1",
};
export const readAfterWrite: Headers<operations["CatalogService_GetCourse"]> = {
  "X-Consistency-Token": "token-from-the-write",
};

// Responses are typed, and say what is always there: the gateway prints every scalar, enum,
// list and map (at its default when unset), so those need no `?.` or `!`...
export function catalogLine(reply: Ok<operations["CatalogService_ListCourses"]>): string[] {
  const total: number = reply.totalSize;
  return reply.courses.map(
    (c) =>
      `${c.title} [${c.level}] ${c.lessonCount} lessons, ${c.tags.join(", ")} ` +
      `(${c.id}, page ${reply.nextPageToken}, ${total} in all)`,
  );
}
export function outline(reply: Ok<operations["CatalogService_GetCourse"]>): string[] {
  return reply.lessons.map((l) => `${l.position}. ${l.title} (${l.contentType})`);
}
export function progressLine(progress: Schemas["CourseProgress"]): string {
  const scores = Object.entries(progress.quizBestScores).map(([id, s]) => `${id}: ${s}`);
  const done = `${progress.percentComplete}% of ${progress.lessonCount}`;
  return `${done}, next ${progress.nextLessonId}, ${scores.join(" ")}`;
}
export function bearer(reply: Ok<operations["IdentityService_CreateSession"]>): string {
  return `${reply.tokenType} ${reply.accessToken} (${reply.expiresIn}s)`;
}
export function whoAmI(user: Schemas["User"]): string {
  return `${user.displayName} <${user.email}> ${user.role} verified=${user.emailVerified}`;
}
export function errorLine(error: Schemas["Status"]): string {
  return `${error.code}: ${error.message} (${error.details.length} details)`;
}
// ...while message fields have presence and may be absent.
export function courseTitle(
  reply: Ok<operations["CatalogService_GetCourse"]>,
): string | undefined {
  return reply.course?.title;
}
export function unchecked(reply: Ok<operations["CatalogService_GetCourse"]>): string {
  // @ts-expect-error `course` is a message field: it may be absent
  return reply.course.title;
}
export type ListCourses = paths["/v1/courses"]["get"];
export const page: Query<ListCourses> = { pageSize: 10 };
