/** Human names of the API's enums, for the studio and admin screens. */
import type { CourseLevel, CourseState, EnrollmentState, Role } from '../../api';

export const STATE_NAMES: Record<CourseState, string> = {
  COURSE_STATE_UNSPECIFIED: 'Unknown',
  COURSE_STATE_DRAFT: 'Draft',
  COURSE_STATE_PUBLISHED: 'Published',
  COURSE_STATE_ARCHIVED: 'Archived',
};

export const LEVEL_NAMES: Record<CourseLevel, string> = {
  COURSE_LEVEL_UNSPECIFIED: 'Any level',
  COURSE_LEVEL_BEGINNER: 'Beginner',
  COURSE_LEVEL_INTERMEDIATE: 'Intermediate',
  COURSE_LEVEL_ADVANCED: 'Advanced',
};

export const ENROLLMENT_NAMES: Record<EnrollmentState, string> = {
  ENROLLMENT_STATE_UNSPECIFIED: 'Unknown',
  ENROLLMENT_STATE_ACTIVE: 'Active',
  ENROLLMENT_STATE_WITHDRAWN: 'Withdrawn',
  ENROLLMENT_STATE_COMPLETED: 'Completed',
};

export const ROLE_NAMES: Record<Role, string> = {
  ROLE_UNSPECIFIED: 'Unknown',
  ROLE_STUDENT: 'Student',
  ROLE_INSTRUCTOR: 'Instructor',
  ROLE_ADMIN: 'Admin',
};

export const STATE_BADGE: Record<CourseState, string> = {
  COURSE_STATE_UNSPECIFIED: 'bg-slate-100 text-slate-800 dark:bg-slate-800 dark:text-slate-100',
  COURSE_STATE_DRAFT: 'bg-amber-100 text-amber-900 dark:bg-amber-900 dark:text-amber-50',
  COURSE_STATE_PUBLISHED: 'bg-emerald-100 text-emerald-900 dark:bg-emerald-900 dark:text-emerald-50',
  COURSE_STATE_ARCHIVED: 'bg-slate-200 text-slate-800 dark:bg-slate-700 dark:text-slate-100',
};
