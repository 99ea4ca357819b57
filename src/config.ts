// Environment parsed once at start into a frozen, typed object. Nothing else reads process.env.

export interface Config {
  readonly port: number;
  readonly host: string;
  /** SQLite file path (or ":memory:"). */
  readonly databaseUrl: string;
  /** HS256 key for user tokens and cursors; when absent on SQLite a key file is kept beside the database. */
  readonly userTokenSecret: string | undefined;
  readonly userTokenIssuer: string;
  readonly logLevel: string;
  /** Fastify trustProxy: false, true, a hop count or a list of addresses/CIDRs. */
  readonly trustProxy: boolean | number | string[];
  readonly bodyLimit: number;
  readonly migrateOnStart: boolean;
}

export class ConfigError extends Error {}

export const ENVIRONMENT_HELP = `Environment:
  PORT                 port to listen on (default 8080)
  HOST                 address to bind (default 127.0.0.1; use 0.0.0.0 in containers)
  DATABASE_URL         SQLite file path (default ./data/users.db)
  USER_TOKEN_SECRET    HS256 key for user tokens and paging cursors, at least 32 characters;
                       when unset, one is generated on first start and kept beside the
                       SQLite database as user-token.secret (mode 0600)
  USER_TOKEN_ISSUER    "iss" claim of user tokens (default users-api)
  LOG_LEVEL            fatal|error|warn|info|debug|trace|silent (default info)
  TRUST_PROXY          honour X-Forwarded-* from: true, a hop count, or comma-separated
                       addresses/CIDRs (default false)
  BODY_LIMIT           largest accepted request body in bytes (default 262144)
  MIGRATE_ON_START     apply pending migrations when serving (default true)`;

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

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const secret = env.USER_TOKEN_SECRET || undefined;
  if (secret !== undefined && secret.length < 32) {
    throw new ConfigError('USER_TOKEN_SECRET must be at least 32 characters');
  }
  const logLevel = env.LOG_LEVEL || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  return Object.freeze({
    port: integer(env, 'PORT', 8080, 0, 65535),
    host: env.HOST || '127.0.0.1',
    databaseUrl: env.DATABASE_URL || './data/users.db',
    userTokenSecret: secret,
    userTokenIssuer: env.USER_TOKEN_ISSUER || 'users-api',
    logLevel,
    trustProxy: trustProxy(env.TRUST_PROXY),
    bodyLimit: integer(env, 'BODY_LIMIT', 262_144, 1024, 64 * 1024 * 1024),
    migrateOnStart: boolean(env, 'MIGRATE_ON_START', true),
  });
}
