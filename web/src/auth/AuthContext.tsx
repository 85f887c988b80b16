/**
 * Who is signed in. On load it tries a refresh (the HttpOnly cookie) to restore the session,
 * then asks GET /v1/users/me for the user. `status` is 'loading' until that is known, so
 * protected routes wait instead of bouncing a signed-in user to the login page.
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';
import { auth, client, onSessionEnded, type RegisterBody, type Role, type User } from '../api';

export type AuthStatus = 'loading' | 'anonymous' | 'signed-in';

interface AuthValue {
  status: AuthStatus;
  user: User | null;
  role: Role | null;
  login: (email: string, password: string) => Promise<User>;
  register: (body: RegisterBody, actionKey: string) => Promise<void>;
  logout: () => Promise<void>;
  /** Re-reads the user (after a profile change). */
  reload: () => Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null>(null);
  const [status, setStatus] = useState<AuthStatus>('loading');

  const signedIn = useCallback((next: User) => {
    setUser(next);
    setStatus('signed-in');
  }, []);

  const signedOut = useCallback(() => {
    setUser(null);
    setStatus('anonymous');
  }, []);

  useEffect(() => {
    let live = true;
    void (async () => {
      try {
        if (await auth.restore(client)) {
          const me = await auth.currentUser(client);
          if (live) signedIn(me);
          return;
        }
      } catch {
        // Fall through: not signed in.
      }
      if (live) signedOut();
    })();
    const off = onSessionEnded(signedOut);
    return () => {
      live = false;
      off();
    };
  }, [signedIn, signedOut]);

  const login = useCallback(
    async (email: string, password: string) => {
      await auth.login(client, { email, password });
      const me = await auth.currentUser(client);
      signedIn(me);
      return me;
    },
    [signedIn],
  );

  const register = useCallback(
    (body: RegisterBody, actionKey: string) => auth.register(client, body, actionKey),
    [],
  );

  const logout = useCallback(async () => {
    await auth.logout(client);
    signedOut();
  }, [signedOut]);

  const reload = useCallback(async () => {
    signedIn(await auth.currentUser(client));
  }, [signedIn]);

  const value = useMemo<AuthValue>(
    () => ({ status, user, role: user?.role ?? null, login, register, logout, reload }),
    [status, user, login, register, logout, reload],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error('useAuth outside AuthProvider');
  return value;
}
