/**
 * Route guards. `<RequireRole roles={[...]}>` wraps a route's element:
 * anonymous → /login?next=<path>, wrong role → the "not allowed" page, loading → a spinner.
 */
import type { ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';
import { useAuth } from '../auth/AuthContext';
import type { Role } from '../api';
import { Loading } from '../components/Loading';
import NotAllowedPage from '../pages/NotAllowedPage';

export const LEARNERS: readonly Role[] = ['ROLE_STUDENT', 'ROLE_INSTRUCTOR', 'ROLE_ADMIN'];
export const INSTRUCTORS: readonly Role[] = ['ROLE_INSTRUCTOR', 'ROLE_ADMIN'];
export const ADMINS: readonly Role[] = ['ROLE_ADMIN'];

export function RequireRole({ roles, children }: { roles: readonly Role[]; children: ReactNode }) {
  const { status, role } = useAuth();
  const location = useLocation();
  if (status === 'loading') return <Loading />;
  if (status === 'anonymous') {
    const next = location.pathname + location.search;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  if (!role || !roles.includes(role)) return <NotAllowedPage />;
  return <>{children}</>;
}

/** Where to go after login: the `next` path if it is one of ours, else the catalog. */
export function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/courses';
}
