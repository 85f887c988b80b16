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
const Placeholder = lazy(() => import('../pages/PlaceholderPage'));
const StudioPage = lazy(() => import('../pages/studio/StudioPage'));
const CourseEditorPage = lazy(() => import('../pages/studio/CourseEditorPage'));
const RosterPage = lazy(() => import('../pages/studio/RosterPage'));
const UsersPage = lazy(() => import('../pages/admin/UsersPage'));
const UserDetailPage = lazy(() => import('../pages/admin/UserDetailPage'));
const AuditPage = lazy(() => import('../pages/admin/AuditPage'));

const soon = (title: string): ReactNode => <Placeholder title={title} />;
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
      { path: 'courses', element: <CatalogPage /> },
      // Phase 2: learner
      { path: 'courses/:slug', element: soon('Course') },
      {
        path: 'courses/:courseId/lessons/:lessonId',
        element: guard(LEARNERS, soon('Lesson player')),
      },
      { path: 'learn', element: guard(LEARNERS, soon('My learning')) },
      { path: 'certificates/:certificateId', element: soon('Certificate') },
      { path: 'profile', element: guard(LEARNERS, soon('Profile')) },
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
