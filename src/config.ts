// Environment parsed once at start into a frozen, typed object. Nothing else reads process.env.
import { OperatorError } from './errors.js';

export type DatabaseConfig =
  | {
      readonly kind: 'sqlite';
      readonly path: string;
      /**
       * 'full' (default): an acknowledged write survives power loss (fsync per commit).
       * 'normal': it survives a crash of the process, not of the machine; commits are much cheaper.
       */
      readonly synchronous?: 'full' | 'normal';
    }
  | {
      readonly kind: 'postgres';
      readonly url: string;
      /** Schema to work in (search_path); the server's default when unset. */
      readonly schema: string | undefined;
      readonly poolSize: number;
      readonly statementTimeoutMs: number;
      /**
       * Client-side: a query the server has not answered within this fails and its connection is discarded
       * (statement_timeout is the server's, and a silent network path never delivers it).
       */
      readonly queryTimeoutMs: number;
      /** The longest wait for a connection: a free one from the pool, or a new one's handshake. */
      readonly connectTimeoutMs: number;
      /**
       * Whether the hot statements are prepared once per connection (named) instead of parsed and planned on every
       * execution; off behind a pooler in transaction mode that does not carry prepared statements across.
       */
      readonly preparedStatements: boolean;
    };

export interface Config {
  readonly port: number;
  readonly host: string;
  /** DATABASE_URL as given: a SQLite file path (or ":memory:") or a postgres:// URL. */
  readonly databaseUrl: string;
  readonly database: DatabaseConfig;
  /** HS256 key for user tokens and cursors; when absent on SQLite a key file is kept beside the database. */
  readonly userTokenSecret: string | undefined;
  readonly userTokenIssuer: string;
  /** PII_KEYS as given: `KEY_ID:BASE64_OF_32_BYTES[,...]`; the first encrypts. */
  readonly piiKeys: string | undefined;
  readonly logLevel: string;
  /** Fastify trustProxy: false, true, a hop count or a list of addresses/CIDRs. */
  readonly trustProxy: boolean | number | string[];
  readonly bodyLimit: number;
  /** Origins (scheme://host[:port]) whose pages may call the Link routes from a browser (CORS); none by default. */
  readonly linkAllowedOrigins: readonly string[];
  /** How long a verified API key is remembered: the longest a revocation takes to apply. */
  readonly apiKeyCacheMs: number;
  readonly migrateOnStart: boolean;
  /** Longest wait for in-flight requests on SIGTERM/SIGINT before exiting anyway. */
  readonly shutdownTimeoutMs: number;
  readonly limits: Limits;
  readonly webhooks: WebhookSettings;
  /** Prometheus metrics on a port of their own; undefined (METRICS_PORT unset): no metrics at all. */
  readonly metrics: MetricsSettings | undefined;
  /** OpenTelemetry traces over OTLP/HTTP; undefined (no endpoint set): no tracing at all. */
  readonly tracing: TracingSettings | undefined;
}

export interface MetricsSettings {
  /** 0: a port the OS picks (tests). */
  readonly port: number;
  readonly host: string;
}

export interface TracingSettings {
  /** Where spans are POSTed: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces. */
  readonly url: string;
  readonly serviceName: string;
}

export interface WebhookSettings {
  /** Deliver the outbox from this process (every instance does by default). */
  readonly deliver: boolean;
  /** http URLs and private, loopback and link-local addresses allowed (development and tests only). */
  readonly allowPrivate: boolean;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly retryBaseMs: number;
  readonly pollMs: number;
  /** Delivered and failed deliveries older than this are deleted (0: kept for ever). */
  readonly retentionDays: number;
  readonly concurrency: number;
  readonly perSubscription: number;
}

export interface Limits {
  /** Requests per API key per window; 0 turns rate limiting off. */
  readonly rateLimitMax: number;
  readonly rateLimitWindowMs: number;
  /** Shared rate-limit counters for several instances; in-process when unset. */
  readonly redisUrl: string | undefined;
  /** The longest a request waits for Redis before it goes on uncounted. */
  readonly redisTimeoutMs: number;
  /** A client must have sent all request headers within this time. */
  readonly headersTimeoutMs: number;
  /** A client must have sent the whole request within this time. */
  readonly requestTimeoutMs: number;
  readonly maxConnections: number;
  /** Shed load with 503 when the event loop lags more than this; 0 turns it off. */
  readonly maxEventLoopDelayMs: number;
}

export class ConfigError extends OperatorError {}

export const ENVIRONMENT_HELP = `Environment:
  PORT                 port to listen on (default 8080)
  HOST                 address to bind (default 127.0.0.1; use 0.0.0.0 in containers)
  DATABASE_URL         SQLite file path (default ./data/users.db), or a PostgreSQL URL
                       postgres://user:password@host:5432/database (also postgresql://)
  SQLITE_SYNCHRONOUS   SQLite only: full (default; acknowledged writes survive power loss) or
                       normal (they survive a process crash only; creates are much faster)
  DATABASE_SCHEMA      PostgreSQL only: schema to use (default: the server's search_path)
  DATABASE_POOL_SIZE   PostgreSQL only: connections per instance (default 10)
  DATABASE_STATEMENT_TIMEOUT_MS
                       PostgreSQL only: statement timeout in milliseconds, enforced by the
                       server (default 5000; 0 = none)
  DATABASE_QUERY_TIMEOUT_MS
                       PostgreSQL only: a query the server has not answered within this
                       fails with 503 and its connection is discarded (default: the statement
                       timeout + 1000, i.e. 6000; must be above the statement timeout)
  DATABASE_CONNECT_TIMEOUT_MS
                       PostgreSQL only: the longest wait for a connection, from the pool or a
                       new one (default 5000). A request answers within this plus
                       DATABASE_QUERY_TIMEOUT_MS of the database going silent
  DATABASE_PREPARED_STATEMENTS
                       PostgreSQL only: prepare each connection's frequent statements once
                       instead of planning them on every execution (default true; false
                       behind a pooler in transaction mode, such as PgBouncer before 1.21)
  USER_TOKEN_SECRET    HS256 key of user tokens, used as given (at least 32 characters); paging
                       cursors are sealed under a key derived from it.
                       Required on PostgreSQL (every instance must share it). On SQLite, when
                       unset, one is generated on first start and kept beside the database
                       as user-token.secret (mode 0600)
  USER_TOKEN_ISSUER    "iss" claim of user tokens (default users-api)
  PII_KEYS             keys that encrypt personal data at rest (ssn, birth_date) with AES-256-GCM:
                       KEY_ID:BASE64_OF_32_BYTES[,KEY_ID:BASE64...]; the first encrypts, the
                       others only decrypt (for rotation: see "users-api pii rotate").
                       Required on PostgreSQL. On SQLite, when unset, generated on first
                       start into pii.keys beside the database (mode 0600)
  LOG_LEVEL            fatal|error|warn|info|debug|trace|silent (default info)
  TRUST_PROXY          honour X-Forwarded-* from: true, a hop count, or comma-separated
                       addresses/CIDRs (default false)
  BODY_LIMIT           largest accepted request body in bytes (default 262144)
  LINK_ALLOWED_ORIGINS comma-separated origins (https://app.example.com) whose pages may call
                       the Link routes (/v2/link/*) from a browser; none by default
  API_KEY_CACHE_MS     how long a verified API key is remembered, i.e. the longest a revocation
                       takes to apply (default 5000; 0 checks the store on every request)
  MIGRATE_ON_START     apply pending migrations when serving (default true)
  SHUTDOWN_TIMEOUT_MS  on SIGTERM/SIGINT, longest wait for in-flight requests (default 10000)
  RATE_LIMIT_MAX       requests per API key per window (default 1200; 0 turns it off)
  RATE_LIMIT_WINDOW_MS the rate-limit window (default 60000)
  REDIS_URL            redis://host:6379: share rate-limit counters between instances
                       (default: counted in each process)
  REDIS_TIMEOUT_MS     the longest a request waits for Redis; past it, and while Redis is
                       unreachable, requests are not counted (default 200)
  HEADERS_TIMEOUT_MS   a client must send all headers within this (default 30000)
  REQUEST_TIMEOUT_MS   a client must send the whole request within this (default 30000)
  MAX_CONNECTIONS      concurrent connections per instance (default 1024)
  WEBHOOK_ALLOW_PRIVATE
                       true allows http:// and private, loopback and link-local webhook
                       addresses (development and tests; default false: https to public only)
  WEBHOOK_TIMEOUT_MS   a receiver must answer 2xx within this (default 10000)
  WEBHOOK_MAX_ATTEMPTS attempts before a delivery is marked failed (default 8)
  WEBHOOK_RETRY_BASE_MS
                       first retry delay; each next is 3x longer, with jitter (default 60000:
                       8 attempts span about 18 hours)
  WEBHOOK_POLL_MS      how often an idle instance looks for due deliveries (default 500)
  WEBHOOK_DELIVERY     false: this instance serves the API but neither fans out nor delivers
                       webhook events (default true)
  WEBHOOK_RETENTION_DAYS
                       delivered and failed deliveries older than this are deleted (default 30;
                       0 keeps them for ever)
  MAX_EVENT_LOOP_DELAY_MS
                       answer 503 while the event loop lags more than this (default 1000;
                       0 turns load shedding off); /healthz is never shed
  METRICS_PORT         serve Prometheus metrics at http://METRICS_HOST:METRICS_PORT/metrics, apart
                       from the API (default: unset, no metrics are kept at all)
  METRICS_HOST         address the metrics server binds (default 127.0.0.1)
  OTEL_EXPORTER_OTLP_ENDPOINT
                       send traces over OTLP/HTTP (JSON) to this collector, at its /v1/traces
                       (e.g. http://127.0.0.1:4318; default: unset, no tracing at all)
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
                       the traces URL itself, used as given (instead of the one above)
  OTEL_SERVICE_NAME    service.name of the spans (default users-api)
  OTEL_SDK_DISABLED    true turns tracing off whatever the endpoint`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name]?.toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

function trustProxy(raw: string | undefined): Config['trustProxy'] {
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  if (/^\d+$/.test(raw)) return Number(raw);
  return raw.split(',').map((part) => part.trim()).filter(Boolean);
}

function database(env: NodeJS.ProcessEnv, databaseUrl: string): DatabaseConfig {
  if (!/^postgres(ql)?:/i.test(databaseUrl)) {
    const synchronous = (env.SQLITE_SYNCHRONOUS || 'full').toLowerCase();
    if (synchronous !== 'full' && synchronous !== 'normal') {
      throw new ConfigError(`SQLITE_SYNCHRONOUS must be full or normal, got "${env.SQLITE_SYNCHRONOUS}"`);
    }
    return { kind: 'sqlite', path: databaseUrl.replace(/^sqlite:(\/\/)?/, ''), synchronous };
  }
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new ConfigError('DATABASE_URL is not a valid URL (expected postgres://user:password@host:5432/database)');
  }
  if (!url.hostname && !url.searchParams.get('host')) {
    throw new ConfigError('DATABASE_URL names no host (expected postgres://user:password@host:5432/database)');
  }
  const schema = env.DATABASE_SCHEMA || undefined;
  if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
    throw new ConfigError('DATABASE_SCHEMA must be a lower-case SQL identifier');
  }
  const statementTimeoutMs = integer(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 5000, 0, 3_600_000);
  const queryTimeoutMs = integer(env, 'DATABASE_QUERY_TIMEOUT_MS', (statementTimeoutMs || 5000) + 1000, 100, 3_601_000);
  // Past the statement timeout the server cancels cleanly and the connection stays usable; the client gives up only after.
  if (statementTimeoutMs > 0 && queryTimeoutMs <= statementTimeoutMs) {
    throw new ConfigError('DATABASE_QUERY_TIMEOUT_MS must be above DATABASE_STATEMENT_TIMEOUT_MS');
  }
  return {
    kind: 'postgres',
    url: databaseUrl,
    schema,
    poolSize: integer(env, 'DATABASE_POOL_SIZE', 10, 1, 1000),
    statementTimeoutMs,
    queryTimeoutMs,
    connectTimeoutMs: integer(env, 'DATABASE_CONNECT_TIMEOUT_MS', 5000, 100, 600_000),
    preparedStatements: boolean(env, 'DATABASE_PREPARED_STATEMENTS', true),
  };
}

function origins(raw: string | undefined): string[] {
  const list = (raw ?? '').split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of list) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin) {
      throw new ConfigError(`LINK_ALLOWED_ORIGINS entries must be origins like https://app.example.com (no path or trailing slash), got "${origin}"`);
    }
  }
  return list;
}

function limits(env: NodeJS.ProcessEnv): Limits {
  const redisUrl = env.REDIS_URL || undefined;
  if (redisUrl !== undefined && !/^rediss?:\/\//.test(redisUrl)) {
    throw new ConfigError('REDIS_URL must be a redis:// or rediss:// URL');
  }
  const headersTimeoutMs = integer(env, 'HEADERS_TIMEOUT_MS', 30_000, 1000, 600_000);
  const requestTimeoutMs = integer(env, 'REQUEST_TIMEOUT_MS', 30_000, 1000, 600_000);
  if (requestTimeoutMs < headersTimeoutMs) {
    throw new ConfigError('REQUEST_TIMEOUT_MS must be at least HEADERS_TIMEOUT_MS');
  }
  return {
    rateLimitMax: integer(env, 'RATE_LIMIT_MAX', 1200, 0, 10_000_000),
    rateLimitWindowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 1000, 86_400_000),
    redisUrl,
    redisTimeoutMs: integer(env, 'REDIS_TIMEOUT_MS', 200, 1, 60_000),
    headersTimeoutMs,
    requestTimeoutMs,
    maxConnections: integer(env, 'MAX_CONNECTIONS', 1024, 1, 1_000_000),
    maxEventLoopDelayMs: integer(env, 'MAX_EVENT_LOOP_DELAY_MS', 1000, 0, 60_000),
  };
}

function metrics(env: NodeJS.ProcessEnv, apiPort: number): MetricsSettings | undefined {
  if (env.METRICS_PORT === undefined || env.METRICS_PORT === '') return undefined;
  const port = integer(env, 'METRICS_PORT', 0, 0, 65535);
  if (port !== 0 && port === apiPort) throw new ConfigError('METRICS_PORT must differ from PORT: metrics are never served beside the API');
  return Object.freeze({ port, host: env.METRICS_HOST || '127.0.0.1' });
}

/** The standard OTel variables that turn tracing on; the SDK reads the rest (OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*...). */
function tracing(env: NodeJS.ProcessEnv): TracingSettings | undefined {
  if (boolean(env, 'OTEL_SDK_DISABLED', false)) return undefined;
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || undefined;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
  if (traces === undefined && base === undefined) return undefined;
  const name = traces === undefined ? 'OTEL_EXPORTER_OTLP_ENDPOINT' : 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT';
  const url = traces ?? `${base!.replace(/\/+$/, '')}/v1/traces`;
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol)) {
    throw new ConfigError(`${name} must be an http:// or https:// URL (OTLP/HTTP, e.g. http://127.0.0.1:4318), got "${traces ?? base}"`);
  }
  for (const protocol of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL']) {
    if (env[protocol] === 'grpc') throw new ConfigError(`${protocol}=grpc is not supported: traces are sent over OTLP/HTTP (port 4318)`);
  }
  return Object.freeze({ url, serviceName: env.OTEL_SERVICE_NAME || 'users-api' });
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const secret = env.USER_TOKEN_SECRET || undefined;
  if (secret !== undefined && secret.length < 32) {
    throw new ConfigError('USER_TOKEN_SECRET must be at least 32 characters');
  }
  const databaseUrl = env.DATABASE_URL || './data/users.db';
  const db = database(env, databaseUrl);
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const port = integer(env, 'PORT', 8080, 0, 65535);
  return Object.freeze({
    port,
    host: env.HOST || '127.0.0.1',
    databaseUrl,
    database: db,
    userTokenSecret: secret,
    userTokenIssuer: env.USER_TOKEN_ISSUER || 'users-api',
    piiKeys: env.PII_KEYS || undefined,
    logLevel,
    trustProxy: trustProxy(env.TRUST_PROXY),
    bodyLimit: integer(env, 'BODY_LIMIT', 262_144, 1024, 64 * 1024 * 1024),
    apiKeyCacheMs: integer(env, 'API_KEY_CACHE_MS', 5000, 0, 600_000),
    linkAllowedOrigins: Object.freeze(origins(env.LINK_ALLOWED_ORIGINS)),
    migrateOnStart: boolean(env, 'MIGRATE_ON_START', true),
    shutdownTimeoutMs: integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    limits: limits(env),
    webhooks: Object.freeze({
      deliver: boolean(env, 'WEBHOOK_DELIVERY', true),
      allowPrivate: boolean(env, 'WEBHOOK_ALLOW_PRIVATE', false),
      timeoutMs: integer(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000),
      maxAttempts: integer(env, 'WEBHOOK_MAX_ATTEMPTS', 8, 1, 50),
      retryBaseMs: integer(env, 'WEBHOOK_RETRY_BASE_MS', 60_000, 10, 86_400_000),
      pollMs: integer(env, 'WEBHOOK_POLL_MS', 500, 10, 60_000),
      retentionDays: integer(env, 'WEBHOOK_RETENTION_DAYS', 30, 0, 3650),
      concurrency: 16,
      perSubscription: 4,
    }),
    metrics: metrics(env, port),
    tracing: tracing(env),
  });
}
