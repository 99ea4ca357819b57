// Rate-limit counters shared through Redis, with every call bounded: a stalled or unreachable Redis costs
// a request at most REDIS_TIMEOUT_MS, once, and the limit fails open (counts nothing) until Redis is back.
import { createRequire } from 'node:module';
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor, RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;
type RouteOptions = Parameters<FastifyRateLimitStore['child']>[0];

/** The plugin's own Redis store (one Lua script per count): its options are in its types, the store is not. */
interface PluginStore {
  incr(key: string, callback: Callback, timeWindow?: number, max?: number): void;
  child(routeOptions: RouteOptions): PluginStore;
}
type PluginStoreCtor = new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => PluginStore;
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore') as PluginStoreCtor;

const NAMESPACE = 'users-api-rl:';
/** ioredis's message when commandTimeout passes without an answer. */
const TIMED_OUT = 'Command timed out';
/** Only for reconnecting in the background: no request waits for a connection. */
const CONNECT_TIMEOUT_MS = 2000;

/** Wraps the plugin's store: a call that times out means a stalled Redis, so the connection is dropped. */
class StallAwareStore implements FastifyRateLimitStore {
  constructor(
    private readonly store: PluginStore,
    private readonly onTimeout: () => void,
  ) {}

  incr(key: string, callback: Callback, timeWindow?: number, max?: number): void {
    this.store.incr(
      key,
      (error, result) => {
        if (error?.message === TIMED_OUT) this.onTimeout();
        callback(error, result);
      },
      timeWindow,
      max,
    );
  }

  child(routeOptions: RouteOptions): StallAwareStore {
    return new StallAwareStore(this.store.child(routeOptions), this.onTimeout);
  }
}

/**
 * One Redis connection for the rate limit. While it is not ready (refused, reconnecting, or dropped after a
 * stall) every call fails at once, since there is no offline queue; a call on a ready connection waits at most
 * `timeoutMs`. A call that times out drops the connection, so that the rest fail at once instead of each
 * waiting out its own timeout behind the stalled ones, and nothing piles up for a server that is not reading;
 * reconnecting (in the background, with ioredis's backoff) finds the server when it answers again.
 */
export class RateLimitRedis {
  private readonly redis: Redis;
  /** undefined until the first connection attempt ends; only changes are logged. */
  private available: boolean | undefined;
  private closing = false;

  private constructor(
    RedisClass: typeof Redis,
    url: string,
    private readonly timeoutMs: number,
    private readonly log: FastifyBaseLogger,
  ) {
    this.redis = new RedisClass(url, {
      lazyConnect: true,
      commandTimeout: timeoutMs,
      enableOfflineQueue: false,
      // A call that was sent when the connection went down fails with it, rather than waiting for the next one.
      maxRetriesPerRequest: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      // A dropped connection is destroyed after this even if the server never acknowledges the close.
      disconnectTimeout: timeoutMs,
    });
    this.redis.on('ready', () => this.markAvailable());
    this.redis.on('error', (error: Error) => this.markUnavailable(error));
    this.redis.on('close', () => this.markUnavailable());
  }

  /** Connects (bounded: a failure is logged and the limit fails open while ioredis keeps retrying). */
  static async connect(url: string, timeoutMs: number, log: FastifyBaseLogger): Promise<RateLimitRedis> {
    // Loaded only when configured: it is a noticeable share of a cold start.
    const { Redis: RedisClass } = await import('ioredis');
    const shared = new RateLimitRedis(RedisClass, url, timeoutMs, log);
    // A failure was logged by the error handler; requests are not counted until a reconnection succeeds.
    await shared.redis.connect().catch(() => undefined);
    return shared;
  }

  /** The store to give @fastify/rate-limit as its `store` option. */
  store(): FastifyRateLimitStoreCtor {
    const { redis } = this;
    const onTimeout = () => this.dropStalledConnection();
    return class extends StallAwareStore {
      constructor(options: RateLimitOptions) {
        super(new RedisStore(options.continueExceeding ?? false, options.exponentialBackoff ?? false, redis, NAMESPACE), onTimeout);
      }
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    // QUIT is bounded by the command timeout too; disconnect() stops reconnecting whatever the state.
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private dropStalledConnection(): void {
    // Every call sent before the stall times out: the first one drops the connection.
    if (this.redis.status !== 'ready' || this.available === false) return;
    this.markUnavailable(new Error(`no answer within REDIS_TIMEOUT_MS (${this.timeoutMs} ms)`));
    this.redis.disconnect(true);
  }

  private markAvailable(): void {
    if (this.available === false) this.log.warn('rate limit store (Redis) is back: requests are counted again');
    this.available = true;
  }

  private markUnavailable(error?: Error): void {
    if (this.available === false || this.closing) return;
    this.available = false;
    this.log.warn({ err: error }, 'rate limit store (Redis) unavailable: requests are not counted until it is back');
  }
}
