// What metrics and traces see of the store: set only when they are turned on, so an unobserved store pays nothing.

/**
 * Runs one statement (or one unit of the group commit, named by its first statement) and returns what it returns, a
 * promise included: tracing wraps it in a span. `text` is the SQL text, never its parameters.
 */
export type ObserveStatement = <T>(text: string, execute: () => T) => T;

export interface DbObserver {
  readonly statement?: ObserveStatement;
  /** A group commit of `writes` writes whose COMMIT (the fsync, with synchronous=FULL) took `seconds`. */
  readonly groupCommitted?: (writes: number, seconds: number) => void;
}
