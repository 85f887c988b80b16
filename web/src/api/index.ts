/** The app's single API client and session (see web/README.md, "Service layer"). */
import { createApiClient } from './client';

type Listener = () => void;
const ended = new Set<Listener>();

export const client = createApiClient({
  onSessionEnded: () => ended.forEach((listener) => listener()),
});
export const { api, session } = client;

/** Subscribes to "the session is over" (refresh refused); returns the unsubscribe. */
export function onSessionEnded(listener: Listener): () => void {
  ended.add(listener);
  return () => ended.delete(listener);
}

export { ApiError, call, actionHeaders, newActionKey } from './client';
export { asApiError } from './errors';
export * from './types';
export * as auth from './auth';
