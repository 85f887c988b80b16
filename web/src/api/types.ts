/**
 * The ONE module that names the API's types. Everything else imports from here, so a change
 * in how the gateway names its schemas (e.g. `learnflow.v1.Course` → `Course`) is a change in
 * this file only. Types come from operations (`paths`), not from schema names, wherever an
 * operation carries them.
 */
import type { paths } from './schema';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;

/** The JSON body of an operation's 200 response. */
export type ResponseOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  responses: { 200: infer R };
}
  ? Json<R>
  : never;

/** The JSON request body of an operation. */
export type BodyOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  requestBody?: infer B;
}
  ? Json<NonNullable<B>>
  : never;

/** The query parameters of an operation. */
export type QueryOf<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  parameters: { query?: infer Q };
}
  ? NonNullable<Q>
  : never;

type Item<T> = T extends readonly (infer I)[] ? I : never;

export type CurrentUserResponse = ResponseOf<'/v1/users/me', 'get'>;
export type User = NonNullable<CurrentUserResponse['user']>;
export type Role = NonNullable<User['role']>;

export type ListCoursesQuery = QueryOf<'/v1/courses', 'get'>;
export type ListCoursesResponse = ResponseOf<'/v1/courses', 'get'>;
export type Course = Item<NonNullable<ListCoursesResponse['courses']>>;
export type CourseLevel = NonNullable<Course['level']>;
export type CourseOrder = 'publish_time desc' | 'title' | 'enrollment_count desc';

export type RegisterBody = BodyOf<'/v1/users:register', 'post'>;
export type LoginBody = BodyOf<'/v1/sessions', 'post'>;

// Learner screens (courses, lessons, progress, comments, certificates, profile).
export type CourseDetail = ResponseOf<'/v1/courses/{course_id}', 'get'>;
export type LessonSummary = Item<NonNullable<CourseDetail['lessons']>>;
export type CourseState = NonNullable<Course['state']>;
export type Lesson = NonNullable<ResponseOf<'/v1/courses/{course_id}/lessons/{lesson_id}', 'get'>['lesson']>;
export type Quiz = NonNullable<Lesson['quiz']>;
export type QuizQuestion = Item<NonNullable<Quiz['questions']>>;
export type QuizAttemptBody = BodyOf<'/v1/courses/{course_id}/lessons/{lesson_id}/quizAttempts', 'post'>;
export type QuizAnswer = Item<NonNullable<QuizAttemptBody['answers']>>;
export type QuizAttemptResult = ResponseOf<'/v1/courses/{course_id}/lessons/{lesson_id}/quizAttempts', 'post'>;
export type CourseProgress = NonNullable<ResponseOf<'/v1/users/me/courses/{course_id}/progress', 'get'>['progress']>;
export type EnrollmentState = NonNullable<CourseProgress['state']>;
export type Comment = Item<NonNullable<ResponseOf<'/v1/courses/{course_id}/lessons/{lesson_id}/comments', 'get'>['comments']>>;
export type Certificate = NonNullable<ResponseOf<'/v1/certificates/{certificate_id}', 'get'>['certificate']>;
export type UserUpdate = BodyOf<'/v1/users/me', 'patch'>;
export type ChangePasswordBody = BodyOf<'/v1/users/me:changePassword', 'post'>;

// Instructor studio and admin screens.
export type AuthoredCoursesQuery = QueryOf<'/v1/users/me/authoredCourses', 'get'>;
export type CreateCourseBody = BodyOf<'/v1/courses', 'post'>;
export type CourseUpdate = BodyOf<'/v1/courses/{course_id}', 'patch'>;
export type LessonUpdate = BodyOf<'/v1/courses/{course_id}/lessons/{lesson_id}', 'patch'>;
export type RosterQuery = QueryOf<'/v1/courses/{course_id}/enrollments', 'get'>;
export type RosterEntry = Item<NonNullable<ResponseOf<'/v1/courses/{course_id}/enrollments', 'get'>['enrollments']>>;
export type ListUsersQuery = QueryOf<'/v1/users', 'get'>;
export type AuditQuery = QueryOf<'/v1/auditEvents', 'get'>;
export type AuditEvent = Item<NonNullable<ResponseOf<'/v1/auditEvents', 'get'>['auditEvents']>>;

// What a client sends of a message the server also answers: the input forms (only the
// contract's REQUIRED fields required), where the response types above say what is always there.
export type CourseInput = NonNullable<CreateCourseBody['course']>;
export type LessonInput = NonNullable<BodyOf<'/v1/courses/{course_id}/lessons', 'post'>['lesson']>;
