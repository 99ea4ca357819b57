// Route schemas compiled when a route first needs them, not all at start-up: compiling every route's validators and
// every status code's serializer took about a quarter of a start (bench/RESULTS.md), and most error bodies a
// process never sends.
import type { FastifyInstance } from 'fastify';

/** One app's compiles not run yet. */
export class DeferredCompiles {
  private readonly pending = new Set<() => unknown>();

  /**
   * A function that runs `compile` on its first call, once, and calls what it made with the same argument (validators
   * and serializers take one). A compile that throws stays pending: the request fails, and so does compileDeferredSchemas.
   */
  onFirstUse<T, R>(compile: () => (data: T) => R): (data: T) => R {
    let compiled: ((data: T) => R) | undefined;
    const build = (): ((data: T) => R) => {
      if (compiled === undefined) {
        compiled = compile();
        this.pending.delete(build);
      }
      return compiled;
    };
    this.pending.add(build);
    return (data) => (compiled ?? build())(data);
  }

  /** Runs every compile still deferred; returns how many ran. */
  runAll(): number {
    const builds = [...this.pending];
    for (const build of builds) build();
    return builds.length;
  }
}

const ofApp = new WeakMap<FastifyInstance, DeferredCompiles>();

export const registerDeferredCompiles = (app: FastifyInstance, compiles: DeferredCompiles): void => void ofApp.set(app, compiles);

/** Compiles every schema of `app` not compiled yet (for tests: a schema that does not compile fails there, not on a request). */
export function compileDeferredSchemas(app: FastifyInstance): number {
  return ofApp.get(app)?.runAll() ?? 0;
}
