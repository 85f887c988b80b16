import { useTheme, type ThemeChoice } from '../theme/ThemeContext';

export function ThemeSwitch() {
  const { choice, setChoice } = useTheme();
  return (
    <label className="flex items-center gap-1 text-sm">
      <span className="sr-only">Theme</span>
      <select
        value={choice}
        onChange={(event) => setChoice(event.target.value as ThemeChoice)}
        className="rounded-md border border-slate-300 bg-white px-2 py-1 text-slate-900 dark:border-slate-600 dark:bg-slate-900 dark:text-slate-100"
      >
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}
