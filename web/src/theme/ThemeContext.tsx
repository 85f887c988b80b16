/**
 * Light / dark theme: "system" (the default) follows prefers-color-scheme live; an explicit
 * choice is remembered in localStorage (a preference, not a secret). The class on <html> is
 * set before the first render by main.tsx (no inline script: the CSP forbids one).
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react';

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'learnflow.theme';
const QUERY = '(prefers-color-scheme: dark)';

export function storedChoice(): ThemeChoice {
  try {
    const value = localStorage.getItem(KEY);
    return value === 'light' || value === 'dark' ? value : 'system';
  } catch {
    return 'system';
  }
}

function systemDark(): boolean {
  return typeof matchMedia === 'function' && matchMedia(QUERY).matches;
}

export function applyTheme(choice: ThemeChoice): 'light' | 'dark' {
  const resolved = choice === 'system' ? (systemDark() ? 'dark' : 'light') : choice;
  document.documentElement.classList.toggle('dark', resolved === 'dark');
  return resolved;
}

interface ThemeValue {
  choice: ThemeChoice;
  resolved: 'light' | 'dark';
  setChoice: (choice: ThemeChoice) => void;
}

const ThemeContext = createContext<ThemeValue | null>(null);

export function ThemeProvider({ children }: { children: ReactNode }) {
  const [choice, setChoiceState] = useState<ThemeChoice>(storedChoice);
  const [resolved, setResolved] = useState<'light' | 'dark'>(() => applyTheme(storedChoice()));

  useEffect(() => {
    setResolved(applyTheme(choice));
    if (choice !== 'system' || typeof matchMedia !== 'function') return;
    const media = matchMedia(QUERY);
    const follow = () => setResolved(applyTheme('system'));
    media.addEventListener('change', follow);
    return () => media.removeEventListener('change', follow);
  }, [choice]);

  const setChoice = useCallback((next: ThemeChoice) => {
    try {
      if (next === 'system') localStorage.removeItem(KEY);
      else localStorage.setItem(KEY, next);
    } catch {
      // Storage may be disabled: the choice then lasts for this page only.
    }
    setChoiceState(next);
  }, []);

  const value = useMemo(() => ({ choice, resolved, setChoice }), [choice, resolved, setChoice]);
  return <ThemeContext.Provider value={value}>{children}</ThemeContext.Provider>;
}

export function useTheme(): ThemeValue {
  const value = useContext(ThemeContext);
  if (!value) throw new Error('useTheme outside ThemeProvider');
  return value;
}
