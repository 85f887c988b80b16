/** A user action against the API: whether it is under way, and how it last failed. */
import { useCallback, useState } from 'react';
import { asApiError, type ApiError } from '../api';

export interface Action {
  busy: boolean;
  error: ApiError | null;
  /** Runs `action`; true when it succeeded, false when it failed (its error is in `error`). */
  run: (action: () => Promise<unknown>) => Promise<boolean>;
}

export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = useCallback(async (action: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
      return true;
    } catch (e) {
      setError(asApiError(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run };
}
