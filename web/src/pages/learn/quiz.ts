/**
 * Quiz state on the learner's side. Learners never see which choices are right, nor whether a
 * question has one or several, so every question takes any set of choices ("all that apply").
 */
import type { QuizAnswer, QuizQuestion } from '../../api';

/** Chosen indexes per question id. */
export type Choices = Readonly<Record<string, readonly number[]>>;

/** Toggles one choice of one question, keeping the indexes sorted (a new object). */
export function toggleChoice(choices: Choices, questionId: string, index: number): Choices {
  const current = choices[questionId] ?? [];
  const next = current.includes(index) ? current.filter((i) => i !== index) : [...current, index].sort((a, b) => a - b);
  return { ...choices, [questionId]: next };
}

/** The attempt's answers, one per question, in the quiz's order. */
export function toAnswers(questions: readonly QuizQuestion[], choices: Choices): QuizAnswer[] {
  return questions.map((q) => ({ questionId: q.id ?? '', choiceIndexes: [...(choices[q.id ?? ''] ?? [])] }));
}

/** The questions still without a choice (the attempt would score them wrong). */
export function unanswered(questions: readonly QuizQuestion[], choices: Choices): QuizQuestion[] {
  return questions.filter((q) => (choices[q.id ?? ''] ?? []).length === 0);
}

/** Attempts left, or null when unlimited (maxAttempts 0/unset). Never below 0. */
export function attemptsLeft(maxAttempts: number | undefined, used: number): number | null {
  if (!maxAttempts) return null;
  return Math.max(0, maxAttempts - used);
}

export function passThreshold(threshold: number | undefined): number {
  return threshold && threshold > 0 ? threshold : 70;
}
