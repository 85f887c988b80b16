/**
 * The studio's forms <-> API mapping, kept free of React so it is unit-tested
 * (forms.test.ts): course fields and their update mask, lesson drafts of every content type,
 * and reordering.
 */
import type { Course, CourseLevel, CourseUpdate, Lesson, LessonInput, LessonSummary, LessonUpdate } from '../../api';

// ------------------------------------------------------------------ courses

/** The editable course fields as the form holds them (strings, as inputs give them). */
export interface CourseDraft {
  title: string;
  summary: string;
  tags: string;
  level: CourseLevel;
  capacity: string;
  enrollmentOpenTime: string;
  enrollmentCloseTime: string;
}

/** ISO time -> the value of an <input type="datetime-local"> (local time, minutes). */
export function toLocalInput(iso: string | undefined): string {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value (local time) -> ISO (UTC), or undefined when empty/invalid. */
export function fromLocalInput(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** "Web, Python  ,,web" -> ["web", "python"]: trimmed, lower-cased, without duplicates. */
export function parseTags(text: string): string[] {
  const tags = text
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
  return [...new Set(tags)];
}

export function courseDraft(course?: Course): CourseDraft {
  return {
    title: course?.title ?? '',
    summary: course?.summary ?? '',
    tags: (course?.tags ?? []).join(', '),
    level: course?.level ?? 'COURSE_LEVEL_UNSPECIFIED',
    capacity: String(course?.capacity ?? 0),
    enrollmentOpenTime: toLocalInput(course?.enrollmentOpenTime),
    enrollmentCloseTime: toLocalInput(course?.enrollmentCloseTime),
  };
}

/** The course message a draft describes (unset times are left out, which clears them). */
export function courseFromDraft(draft: CourseDraft): CourseUpdate {
  const course: CourseUpdate = {
    title: draft.title.trim(),
    summary: draft.summary.trim(),
    tags: parseTags(draft.tags),
    level: draft.level,
    capacity: Number.parseInt(draft.capacity || '0', 10) || 0,
  };
  const open = fromLocalInput(draft.enrollmentOpenTime);
  const close = fromLocalInput(draft.enrollmentCloseTime);
  if (open) course.enrollmentOpenTime = open;
  if (close) course.enrollmentCloseTime = close;
  return course;
}

const COURSE_FIELDS = ['title', 'summary', 'tags', 'level', 'capacity', 'enrollmentOpenTime', 'enrollmentCloseTime'] as const;

/** The update mask (JSON names) of the fields a draft changes from the saved course. */
export function courseMask(saved: Course, draft: CourseDraft): string[] {
  const before = courseFromDraft(courseDraft(saved));
  const after = courseFromDraft(draft);
  return COURSE_FIELDS.filter((field) => JSON.stringify(before[field]) !== JSON.stringify(after[field]));
}

// ------------------------------------------------------------------ lessons

export type LessonKind = 'article' | 'video' | 'quiz' | 'codeExercise';
export const LESSON_KINDS: { value: LessonKind; label: string }[] = [
  { value: 'article', label: 'Article' },
  { value: 'video', label: 'Video' },
  { value: 'quiz', label: 'Quiz' },
  { value: 'codeExercise', label: 'Code exercise' },
];

export interface QuestionDraft {
  /** Server-assigned; empty for a new question. */
  id: string;
  prompt: string;
  choices: string[];
  correct: number[];
}

export interface LessonDraft {
  title: string;
  kind: LessonKind;
  markdown: string;
  videoUrl: string;
  durationSeconds: string;
  passThresholdPercent: string;
  maxAttempts: string;
  questions: QuestionDraft[];
  language: string;
  prompt: string;
  starterCode: string;
}

export function newQuestion(): QuestionDraft {
  return { id: '', prompt: '', choices: ['', ''], correct: [] };
}

export function lessonDraft(kind: LessonKind = 'article', lesson?: Lesson): LessonDraft {
  const quiz = lesson?.quiz;
  return {
    title: lesson?.title ?? '',
    kind: lesson ? lessonKind(lesson) : kind,
    markdown: lesson?.article?.markdown ?? '',
    videoUrl: lesson?.video?.url ?? '',
    durationSeconds: lesson?.video?.durationSeconds ? String(lesson.video.durationSeconds) : '',
    passThresholdPercent: String(quiz?.passThresholdPercent || 70),
    maxAttempts: String(quiz?.maxAttempts ?? 0),
    questions: quiz?.questions?.map((q) => ({
      id: q.id ?? '',
      prompt: q.prompt,
      choices: [...(q.choices ?? [])],
      correct: [...(q.correctChoiceIndexes ?? [])],
    })) ?? [newQuestion()],
    language: lesson?.codeExercise?.language ?? 'python',
    prompt: lesson?.codeExercise?.prompt ?? '',
    starterCode: lesson?.codeExercise?.starterCode ?? '',
  };
}

export function lessonKind(lesson: Lesson): LessonKind {
  if (lesson.video) return 'video';
  if (lesson.quiz) return 'quiz';
  if (lesson.codeExercise) return 'codeExercise';
  return 'article';
}

const int = (text: string): number => Number.parseInt(text || '0', 10) || 0;

// What a client sends (the input forms: ids and defaults may be left out), not what it reads.
type Article = NonNullable<LessonInput['article']>;
type Video = NonNullable<LessonInput['video']>;
type Quiz = NonNullable<LessonInput['quiz']>;
type CodeExercise = NonNullable<LessonInput['codeExercise']>;
/** The content oneof: exactly one of them. */
export type LessonContent = { article: Article } | { video: Video } | { quiz: Quiz } | { codeExercise: CodeExercise };
export type NewLesson = LessonInput;

/** The lesson's content message for its kind (exactly one of the oneof is set). */
export function lessonContent(draft: LessonDraft): LessonContent {
  switch (draft.kind) {
    case 'article':
      return { article: { markdown: draft.markdown } };
    case 'video': {
      const seconds = int(draft.durationSeconds);
      return { video: seconds ? { url: draft.videoUrl.trim(), durationSeconds: seconds } : { url: draft.videoUrl.trim() } };
    }
    case 'quiz':
      return {
        quiz: {
          passThresholdPercent: int(draft.passThresholdPercent),
          maxAttempts: int(draft.maxAttempts),
          questions: draft.questions.map((q) => ({
            ...(q.id ? { id: q.id } : {}),
            prompt: q.prompt,
            choices: q.choices,
            correctChoiceIndexes: [...q.correct].sort((a, b) => a - b),
          })),
        },
      };
    case 'codeExercise':
      return { codeExercise: { language: draft.language.trim(), prompt: draft.prompt, starterCode: draft.starterCode } };
  }
}

/** The lesson to create: title and content; position 0 appends. */
export function lessonToCreate(draft: LessonDraft): NewLesson {
  return { title: draft.title.trim(), position: 0, ...lessonContent(draft) };
}

/**
 * The PATCH of an edited lesson: the changed fields and their mask. Content is sent whole
 * under the `content` path when any of it changed (the server replaces the oneof).
 */
export function lessonPatch(saved: Lesson, draft: LessonDraft): { lesson: LessonUpdate; mask: string[] } {
  const before = lessonDraft('article', saved);
  const lesson: LessonUpdate = {};
  const mask: string[] = [];
  if (draft.title.trim() !== before.title) {
    lesson.title = draft.title.trim();
    mask.push('title');
  }
  const content = lessonContent(draft);
  if (draft.kind !== before.kind || JSON.stringify(content) !== JSON.stringify(lessonContent(before))) {
    Object.assign(lesson, content);
    mask.push('content');
  }
  return { lesson, mask };
}

/** Toggles a correct answer (checkbox) of a question. */
export function toggleCorrect(question: QuestionDraft, index: number): QuestionDraft {
  const correct = question.correct.includes(index)
    ? question.correct.filter((i) => i !== index)
    : [...question.correct, index];
  return { ...question, correct };
}

/** Removes a choice and shifts the correct indexes after it. */
export function removeChoice(question: QuestionDraft, index: number): QuestionDraft {
  return {
    ...question,
    choices: question.choices.filter((_, i) => i !== index),
    correct: question.correct.filter((i) => i !== index).map((i) => (i > index ? i - 1 : i)),
  };
}

// ------------------------------------------------------------------ reordering

/**
 * Moving the lesson at `index` by `delta` (-1 up, +1 down): the reordered list (positions
 * renumbered 1..n, as the server will) and the new 1-based position to PATCH, or null when
 * it cannot move.
 */
export function moveLesson(
  lessons: readonly LessonSummary[],
  index: number,
  delta: -1 | 1,
): { lessons: LessonSummary[]; position: number } | null {
  const target = index + delta;
  if (index < 0 || index >= lessons.length || target < 0 || target >= lessons.length) return null;
  const next = [...lessons];
  const [moved] = next.splice(index, 1);
  if (!moved) return null;
  next.splice(target, 0, moved);
  return { lessons: next.map((l, i) => ({ ...l, position: i + 1 })), position: target + 1 };
}
