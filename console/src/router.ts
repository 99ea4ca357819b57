// Client-side routes under /console (the server answers every /console/... path with the page).
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/console';

export interface Route {
  /** The path below /console: "/users/…". */
  path: string;
  query: URLSearchParams;
}

function current(): Route {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : location.pathname;
  return { path: path === '' ? '/' : path, query: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
let flash: string | null = null;

/** Goes to `to` (a path below /console, with its query); `notice` is shown once on the next page. */
export function navigate(to: string, { replace = false, notice }: { replace?: boolean; notice?: string } = {}): void {
  flash = notice ?? null;
  history[replace ? 'replaceState' : 'pushState'](null, '', `${BASE}${to}`);
  for (const listener of listeners) listener();
}

/** The notice left by the last navigate(), once. */
export function takeNotice(): string | null {
  const notice = flash;
  flash = null;
  return notice;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(current);
  useEffect(() => {
    const update = () => setRoute(current());
    listeners.add(update);
    addEventListener('popstate', update);
    return () => {
      listeners.delete(update);
      removeEventListener('popstate', update);
    };
  }, []);
  return route;
}

/** A plain left click on an in-console link navigates without a reload; others (new tab...) are the browser's. */
export function followLink(event: MouseEvent, to: string): void {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(to);
}
