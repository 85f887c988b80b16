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

// Schema names a generator keeps as they are: short, no dots.
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
export const quiz: Schemas["Lesson"] = {
  title: "Check",
  quiz: { questions: [{ prompt: "2 + 2?", choices: ["3", "4"], correctChoiceIndexes: [1] }] },
};
// @ts-expect-error an article and a video at once
export const both: Schemas["Lesson"] = {
  title: "x",
  article: { markdown: "a" },
  video: { url: "u" },
};

export function contentKind(lesson: Schemas["Lesson"]): string {
  if (lesson.article !== undefined) return lesson.article.markdown;
  if (lesson.video !== undefined) return lesson.video.url ?? "";
  if (lesson.quiz !== undefined) return String(lesson.quiz.questions?.length ?? 0);
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

// Responses are typed.
export function courseTitle(
  reply: Ok<operations["CatalogService_GetCourse"]>,
): string | undefined {
  return reply.course?.title;
}
export type ListCourses = paths["/v1/courses"]["get"];
export const page: Query<ListCourses> = { pageSize: 10 };
