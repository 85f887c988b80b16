/**
 * The route table. Every page is a lazy chunk (React.lazy), loaded when first visited.
 * To add a page: create src/pages/XPage.tsx with a default export, add a `lazy()` line and a
 * route below (wrapped in <RequireRole> if it needs a role). See web/README.md.
 */
import { lazy, type ReactNode } from 'react';
import { Navigate, type RouteObject } from 'react-router';
import { Shell } from '../components/Shell';
import { ADMINS, INSTRUCTORS, LEARNERS, RequireRole } from './guards';

const CatalogPage = lazy(() => import('../pages/CatalogPage'));
const LoginPage = lazy(() => import('../pages/LoginPage'));
const RegisterPage = lazy(() => import('../pages/RegisterPage'));
const NotFoundPage = lazy(() => import('../pages/NotFoundPage'));
const ForgotPasswordPage = lazy(() => import('../pages/account/ForgotPasswordPage'));
const ResetPasswordPage = lazy(() => import('../pages/account/ResetPasswordPage'));
const VerifyEmailPage = lazy(() => import('../pages/account/VerifyEmailPage'));
const StudioPage = lazy(() => import('../pages/studio/StudioPage'));
const CourseEditorPage = lazy(() => import('../pages/studio/CourseEditorPage'));
const RosterPage = lazy(() => import('../pages/studio/RosterPage'));
const UsersPage = lazy(() => import('../pages/admin/UsersPage'));
const UserDetailPage = lazy(() => import('../pages/admin/UserDetailPage'));
const AuditPage = lazy(() => import('../pages/admin/AuditPage'));
// Learner pages (src/pages/learn/).
const CoursePage = lazy(() => import('../pages/learn/CoursePage'));
const LessonPage = lazy(() => import('../pages/learn/LessonPage'));
const DashboardPage = lazy(() => import('../pages/learn/DashboardPage'));
const ProgressPage = lazy(() => import('../pages/learn/ProgressPage'));
const CertificatePage = lazy(() => import('../pages/learn/CertificatePage'));
const ProfilePage = lazy(() => import('../pages/learn/ProfilePage'));

const guard = (roles: typeof LEARNERS, element: ReactNode) => (
  <RequireRole roles={roles}>{element}</RequireRole>
);

export const routes: RouteObject[] = [
  {
    element: <Shell />,
    children: [
      { index: true, element: <Navigate to="/courses" replace /> },
      { path: 'login', element: <LoginPage /> },
      { path: 'register', element: <RegisterPage /> },
      // Account recovery: the paths the server's mails link to (LEARNFLOW_PUBLIC_URL + …).
      { path: 'forgot-password', element: <ForgotPasswordPage /> },
      { path: 'reset-password', element: <ResetPasswordPage /> },
      { path: 'verify-email', element: <VerifyEmailPage /> },
      { path: 'courses', element: <CatalogPage /> },
      // Phase 2: learner
      { path: 'courses/:slug', element: <CoursePage /> },
      { path: 'courses/:courseId/lessons/:lessonId', element: guard(LEARNERS, <LessonPage />) },
      { path: 'learn', element: guard(LEARNERS, <DashboardPage />) },
      { path: 'learn/courses/:courseId', element: guard(LEARNERS, <ProgressPage />) },
      { path: 'certificates/:certificateId', element: <CertificatePage /> },
      { path: 'profile', element: guard(LEARNERS, <ProfilePage />) },
      // Phase 2: instructor studio
      { path: 'studio', element: guard(INSTRUCTORS, <StudioPage />) },
      { path: 'studio/courses/:courseId', element: guard(INSTRUCTORS, <CourseEditorPage />) },
      { path: 'studio/courses/:courseId/roster', element: guard(INSTRUCTORS, <RosterPage />) },
      // Phase 2: admin
      { path: 'admin/users', element: guard(ADMINS, <UsersPage />) },
      { path: 'admin/users/:userId', element: guard(ADMINS, <UserDetailPage />) },
      { path: 'admin/audit', element: guard(ADMINS, <AuditPage />) },
      { path: '*', element: <NotFoundPage /> },
    ],
  },
];

/** The header's links, by role (null: everyone). */
export const NAV: { to: string; label: string; roles: typeof LEARNERS | null }[] = [
  { to: '/courses', label: 'Catalog', roles: null },
  { to: '/learn', label: 'My learning', roles: LEARNERS },
  { to: '/studio', label: 'Studio', roles: INSTRUCTORS },
  { to: '/admin/users', label: 'Users', roles: ADMINS },
  { to: '/admin/audit', label: 'Audit log', roles: ADMINS },
];
