/**
 * The app shell: skip link, header (nav by role, theme switch, user menu), and the routed page
 * in <main>, which gets focus after each navigation so screen readers and keyboard users
 * start at the new page. Page changes fade in unless the user prefers reduced motion.
 */
import { Suspense, useEffect, useRef } from 'react';
import { NavLink, Outlet, useLocation, useNavigate } from 'react-router';
import { onSessionEnded } from '../api';
import { LazyMotion, domAnimation, m, useReducedMotion } from 'motion/react';
import { useAuth } from '../auth/AuthContext';
import { NAV } from '../routes/routes';
import { Loading } from './Loading';
import { ThemeSwitch } from './ThemeSwitch';
import { UserMenu } from './UserMenu';

export function Shell() {
  const { pathname } = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  const reduced = useReducedMotion();
  const navigate = useNavigate();

  // The session ended under the user (refresh refused): to the login page, and back after.
  useEffect(
    () =>
      onSessionEnded(() => {
        const here = window.location.pathname + window.location.search;
        if (!here.startsWith('/login')) navigate(`/login?next=${encodeURIComponent(here)}`);
      }),
    [navigate],
  );

  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
    window.scrollTo(0, 0);
  }, [pathname]);

  return (
    <LazyMotion features={domAnimation} strict>
      <a
        href="#main"
        className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded focus:bg-white focus:px-3 focus:py-2 focus:text-slate-900"
      >
        Skip to content
      </a>
      <Header />
      <main
        id="main"
        ref={main}
        tabIndex={-1}
        className="mx-auto w-full max-w-6xl px-4 py-6 outline-none sm:px-6 sm:py-10"
      >
        <Suspense fallback={<Loading />}>
          <m.div
            key={pathname}
            initial={reduced ? false : { opacity: 0, y: 8 }}
            animate={{ opacity: 1, y: 0 }}
            transition={{ duration: 0.2, ease: 'easeOut' }}
          >
            <Outlet />
          </m.div>
        </Suspense>
      </main>
    </LazyMotion>
  );
}

function Header() {
  const { status, role } = useAuth();
  const navigate = useNavigate();
  const links = NAV.filter((link) => link.roles === null || (role !== null && link.roles.includes(role)));
  return (
    <header className="border-b border-slate-200 bg-white/90 dark:border-slate-800 dark:bg-slate-950/90">
      <div className="mx-auto flex max-w-6xl flex-wrap items-center gap-x-4 gap-y-2 px-4 py-3 sm:px-6">
        <NavLink to="/courses" className="text-lg font-bold text-brand-600 dark:text-brand-50">
          LearnFlow
        </NavLink>
        <nav aria-label="Main" className="order-last w-full overflow-x-auto sm:order-none sm:w-auto">
          <ul className="flex gap-1">
            {links.map((link) => (
              <li key={link.to}>
                <NavLink
                  to={link.to}
                  className={({ isActive }) =>
                    `block whitespace-nowrap rounded-md px-3 py-1.5 text-sm font-medium ${
                      isActive
                        ? 'bg-brand-50 text-brand-700 dark:bg-slate-800 dark:text-white'
                        : 'text-slate-700 hover:bg-slate-100 dark:text-slate-300 dark:hover:bg-slate-800'
                    }`
                  }
                >
                  {link.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className="ml-auto flex items-center gap-2">
          <ThemeSwitch />
          {status === 'signed-in' && <UserMenu />}
          {status === 'anonymous' && (
            <>
              <NavLink to="/login" className="rounded-md px-3 py-1.5 text-sm font-medium hover:bg-slate-100 dark:hover:bg-slate-800">
                Log in
              </NavLink>
              <button
                type="button"
                onClick={() => navigate('/register')}
                className="rounded-md bg-brand-600 px-3 py-1.5 text-sm font-medium text-white hover:bg-brand-700"
              >
                Sign up
              </button>
            </>
          )}
        </div>
      </div>
    </header>
  );
}
