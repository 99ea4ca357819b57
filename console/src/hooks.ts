// Loading data for a page: loading, loaded or failed, with a way to load again.
import { useCallback, useEffect, useState } from 'preact/hooks';

export type Loaded<T> =
  | { status: 'loading'; data?: undefined; error?: undefined }
  | { status: 'ok'; data: T; error?: undefined }
  | { status: 'error'; data?: undefined; error: unknown };

export type Load<T> = Loaded<T> & { reload: () => void; set: (data: T) => void };

/** Runs `load` when `deps` change (aborting the one before) and on reload(). */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Load<T> {
  const [state, setState] = useState<Loaded<T>>({ status: 'loading' });
  const [round, setRound] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setState({ status: 'loading' });
    load(controller.signal).then(
      (data) => controller.signal.aborted || setState({ status: 'ok', data }),
      (error: unknown) => controller.signal.aborted || setState({ status: 'error', error }),
    );
    return () => controller.abort();
    // `deps` say when `load` changes: it is a new closure on every render.
  }, [...deps, round]);
  const reload = useCallback(() => setRound((n) => n + 1), []);
  const set = useCallback((data: T) => setState({ status: 'ok', data }), []);
  return { ...state, reload, set };
}
