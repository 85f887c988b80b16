/** The signed-in user's menu: a disclosure (<details>), keyboard- and screen-reader-friendly. */
import { useRef } from 'react';
import { Link, useNavigate } from 'react-router';
import { useAuth } from '../auth/AuthContext';

const ROLE_NAMES: Record<string, string> = {
  ROLE_STUDENT: 'Student',
  ROLE_INSTRUCTOR: 'Instructor',
  ROLE_ADMIN: 'Admin',
};

export function UserMenu() {
  const { user, logout } = useAuth();
  const navigate = useNavigate();
  const menu = useRef<HTMLDetailsElement>(null);
  const close = () => menu.current?.removeAttribute('open');
  const name = user?.displayName || user?.email || 'Account';
  return (
    <details ref={menu} className="relative">
      <summary className="cursor-pointer list-none rounded-md px-3 py-1.5 text-sm font-medium hover:bg-slate-100 dark:hover:bg-slate-800">
        <span className="inline-block max-w-32 truncate align-bottom">{name}</span> ▾
      </summary>
      <div className="absolute right-0 z-40 mt-2 w-56 rounded-md border border-slate-200 bg-white p-2 shadow-lg dark:border-slate-700 dark:bg-slate-900">
        <p className="px-2 py-1 text-xs text-slate-600 dark:text-slate-400">
          Signed in as {user?.email} ({ROLE_NAMES[user?.role ?? ''] ?? 'User'})
        </p>
        <Link to="/profile" onClick={close} className="block rounded px-2 py-1.5 text-sm hover:bg-slate-100 dark:hover:bg-slate-800">
          Profile
        </Link>
        <button
          type="button"
          onClick={async () => {
            close();
            await logout();
            navigate('/login');
          }}
          className="block w-full rounded px-2 py-1.5 text-left text-sm hover:bg-slate-100 dark:hover:bg-slate-800"
        >
          Log out
        </button>
      </div>
    </details>
  );
}
