// The signed-in API key: in memory, and in sessionStorage so that a reload of the tab keeps it (never localStorage
// or a cookie). Closing the tab or signing out forgets it.

export interface Credentials {
  keyId: string;
  secret: string;
}

const STORAGE_KEY = 'users-api-console.credentials';

function stored(): Credentials | null {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? 'null') as Partial<Credentials> | null;
    return typeof value?.keyId === 'string' && typeof value.secret === 'string' ? { keyId: value.keyId, secret: value.secret } : null;
  } catch {
    return null;
  }
}

let current: Credentials | null = stored();
/** Why the last session ended, when the console ended it (shown on the sign-in page once). */
let endedBecause: string | null = null;
const listeners = new Set<() => void>();

function changed(): void {
  for (const listener of listeners) listener();
}

export const session = {
  credentials: (): Credentials | null => current,

  signIn(credentials: Credentials): void {
    current = credentials;
    endedBecause = null;
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
    changed();
  },

  signOut(reason: string | null = null): void {
    current = null;
    endedBecause = reason;
    sessionStorage.removeItem(STORAGE_KEY);
    changed();
  },

  /** The reason the console signed out by itself, once. */
  takeEndReason(): string | null {
    const reason = endedBecause;
    endedBecause = null;
    return reason;
  },

  subscribe(listener: () => void): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};
