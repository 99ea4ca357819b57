// Per-key rate limits (in-process or shared through Redis), load shedding, and headers fit for an API.
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Limits } from '../config.js';
import { ApiError, errors } from '../errors.js';
import { RateLimitRedis } from './limits.redis.js';

const COMMON_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};
/** API responses carry personal data: never stored by caches; and they are data, never a page. */
const API_HEADERS = {
  ...COMMON_HEADERS,
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
};

/**
 * The console (src/http/console.ts) runs its own scripts and styles and calls the API from the same origin, nothing
 * else: no inline code, no other origin, no framing, and its forms never submit natively (its code sends them).
 * Its files override no-store with their own caching.
 */
const CONSOLE_HEADERS = {
  ...COMMON_HEADERS,
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
};

/** The API reference page and its assets load scripts and styles: no CSP or no-store for them. */
const DOCS_PAGE = /^\/docs(?:[/?]|$)/;
const CONSOLE_PAGE = /^\/console(?:[/?]|$)/;

function pageHeaders(url: string): Record<string, string> {
  if (DOCS_PAGE.test(url)) return COMMON_HEADERS;
  if (CONSOLE_PAGE.test(url)) return CONSOLE_HEADERS;
  return API_HEADERS;
}

const HSTS = 'max-age=31536000';

/** Headers for every response: nothing sniffed, framed, cached or referred; and the request id. */
export function securityHeaders(request: FastifyRequest): Record<string, string> {
  const headers: Record<string, string> = {
    'x-request-id': request.id,
    ...pageHeaders(request.url),
  };
  if (request.protocol === 'https') headers['strict-transport-security'] = HSTS;
  return headers;
}

/**
 * Set when the request arrives, so every answer carries them, errors included; a synchronous onRequest
 * hook costs less per request than an async onSend hook.
 */
export function registerSecurityHeaders(app: FastifyInstance): void {
  app.addHook('onRequest', (request, reply, done) => {
    // The page's headers are one object made at start-up: nothing copied per request.
    reply.header('x-request-id', request.id).headers(pageHeaders(request.url));
    if (request.protocol === 'https') reply.header('strict-transport-security', HSTS);
    done();
  });
}

/**
 * Route config for a route that is never shed (the liveness probe): under-pressure lets a request through
 * when the route's own pressure handler sends nothing. A busy instance is alive; shedding its liveness
 * probe would have the orchestrator restart it, losing its in-flight work and moving its load to others.
 */
export const NEVER_SHED = { pressureHandler: () => undefined };

/** Requests answered 503 by load shedding (a 503 can also mean the database did not answer): for metrics. */
const shedRequests = new WeakSet<FastifyRequest>();

export const wasShed = (request: FastifyRequest): boolean => shedRequests.has(request);

/** 503 while the event loop lags (the process is saturated), instead of queueing without bound. */
export async function registerLoadShedding(app: FastifyInstance, limits: Limits): Promise<void> {
  if (limits.maxEventLoopDelayMs === 0) return;
  await app.register(underPressure, {
    maxEventLoopDelay: limits.maxEventLoopDelayMs,
    sampleInterval: 250,
    pressureHandler: (request) => {
      shedRequests.add(request);
      throw errors.unavailable();
    },
  });
}

/**
 * Rate limit per API key, counted after authentication (so a guessed key id cannot spend another
 * client's budget) and before the body is read (so an invalid, oversized or unreadable body spends it
 * too). Register inside the authenticated scope, after its onRequest authentication hook: the plugin
 * adds its hook to each route, and route hooks run after the scope's.
 */
/**
 * The counters' store, shared by every rate-limited scope: one Redis connection (with REDIS_URL) per process,
 * closed with the app; in-process counters otherwise (undefined).
 */
export async function connectRateLimitStore(app: FastifyInstance, limits: Limits): Promise<RateLimitRedis | undefined> {
  if (limits.rateLimitMax === 0 || !limits.redisUrl) return undefined;
  const redis = await RateLimitRedis.connect(limits.redisUrl, limits.redisTimeoutMs, app.log);
  app.addHook('onClose', () => redis.close());
  return redis;
}

export async function registerRateLimit(
  scope: FastifyInstance,
  limits: Limits,
  redis: RateLimitRedis | undefined,
  /** Whose budget a request spends: its API key by default. */
  keyOf: (request: FastifyRequest) => string = (request) => request.apiKeyId,
): Promise<void> {
  if (limits.rateLimitMax === 0) return;
  await scope.register(rateLimit, {
    hook: 'onRequest',
    max: limits.rateLimitMax,
    timeWindow: limits.rateLimitWindowMs,
    keyGenerator: keyOf,
    // A broken Redis must not take the API down with it: count nothing until it is back.
    skipOnError: true,
    ...(redis ? { store: redis.store() } : {}),
    errorResponseBuilder: (_request, context) => {
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
      return new ApiError(
        429,
        { detail: `Request was throttled. Expected available in ${seconds} seconds.` },
        { 'retry-after': String(seconds) },
      );
    },
  });
}
