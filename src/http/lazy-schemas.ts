// Route schemas compiled when a route first needs them, not all at start-up: compiling every route's validators and
// every status code's serializer took about a quarter of a start (bench/RESULTS.md), and most error bodies a
// process never sends.
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

/** One app's compiles not run yet. */
export class DeferredCompiles {
  private readonly pending = new Set<() => unknown>();

  /** A function that runs `compile` on its first call, once, and calls what it made with the same arguments. */
  onFirstUse<F extends (...args: never[]) => unknown>(compile: () => F): F {
    let compiled: F | undefined;
    const build = (): F => {
      if (compiled === undefined) {
        compiled = compile();
        this.pending.delete(build);
      }
      return compiled;
    };
    this.pending.add(build);
    return ((...args: Parameters<F>) => build()(...args)) as F;
  }

  /** Runs every compile still deferred; returns how many ran. */
  runAll(): number {
    const builds = [...this.pending];
    for (const build of builds) build();
    return builds.length;
  }

  /** Fastify's own response serializers (fast-json-stringify), each compiled on its first response. */
  serializers(): NonNullable<FastifyServerOptions['schemaController']> {
    return {
      compilersFactory: {
        buildSerializer: (externalSchemas, options) => {
          const compilerOf = SerializerSelector()(externalSchemas as never, options as never);
          return (route) => this.onFirstUse(() => compilerOf(route as never) as (data: unknown) => string);
        },
      },
    };
  }
}

const ofApp = new WeakMap<FastifyInstance, DeferredCompiles>();

export const registerDeferredCompiles = (app: FastifyInstance, compiles: DeferredCompiles): void => void ofApp.set(app, compiles);

/** Compiles every schema of `app` not compiled yet (for tests: a schema that does not compile fails there, not on a request). */
export function compileDeferredSchemas(app: FastifyInstance): number {
  return ofApp.get(app)?.runAll() ?? 0;
}
