// Server secrets: from configuration, or for an embedded SQLite store kept in owner-only files beside the database.
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, type Config } from './config.js';
import { embeddedSqliteOf, type Db } from './db/database.js';
import { newPiiKeyEntry, parsePiiKeys, PiiKeyError, type PiiKey } from './pii/pii.cipher.js';

/** A separate key per purpose, so a cursor MAC can never be replayed as a token signature. */
export function deriveKey(secret: string, purpose: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(purpose).digest());
}

/** What an embedded store already holds that a new secret would orphan. */
interface StoreContents {
  /** Ciphertexts under the PII keys: users' personal data, stored idempotent responses. */
  encryptedData: boolean;
  users: boolean;
}

/** Checks the embedded store behind `db` (synchronously: it is one local connection); nothing for other stores. */
function contentsOf(db: Db | undefined): StoreContents {
  const sqlite = db && embeddedSqliteOf(db)?.connection;
  const exists = (query: string) => {
    try {
      return sqlite?.prepare(query).pluck().get() === 1;
    } catch {
      return false; // not migrated yet: no tables, no data
    }
  };
  return {
    encryptedData:
      exists('select exists(select 1 from users where pii is not null)') ||
      exists('select exists(select 1 from idempotency_keys where response_body is not null)'),
    users: exists('select exists(select 1 from users)'),
  };
}

/**
 * Reads a secret file, creating it (owner-only) with `generate()` when it does not exist and `mayCreate()` allows.
 * The file holds the value and nothing else (no newline), so its contents are the secret exactly; a newline added
 * by an editor is ignored.
 */
function loadOrCreate(path: string, generate: () => string, mayCreate: () => void): { value: string; created: boolean } {
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    return { value: readFileSync(path, 'utf8').trim(), created: false };
  }
  mayCreate();
  const value = generate();
  writeFileSync(path, value, { mode: 0o600, flag: 'wx' });
  return { value, created: true };
}

export interface Secrets {
  userTokenSecret: string;
  piiKeys: PiiKey[];
  /** Set when a new user-token.secret replaced a lost one for a store that already has users. */
  userTokenSecretReplaced?: true;
}

export const SECRET_FILES = { userToken: 'user-token.secret', piiKeys: 'pii.keys' } as const;

/**
 * Shared stores (PostgreSQL) take every secret from configuration, since all instances must agree;
 * an embedded store generates what is missing into files beside the database. With `db` (the opened store),
 * a missing pii.keys is generated only while the store holds no data encrypted under a key: otherwise the old
 * key is lost and a new one would only add data nobody can read, so this refuses. A missing user-token.secret is
 * replaced (tokens live an hour and cursors a walk; nothing at rest depends on it), and the caller is told.
 */
export function resolveSecrets(config: Config, db?: Db): Secrets {
  const { database } = config;
  if (database.kind === 'postgres') {
    for (const [name, value] of [
      ['USER_TOKEN_SECRET', config.userTokenSecret],
      ['PII_KEYS', config.piiKeys],
    ] as const) {
      if (!value) {
        throw new ConfigError(`${name} is required when DATABASE_URL is PostgreSQL: every instance must use the same value`);
      }
    }
  }
  let contents: StoreContents | undefined;
  const stored = () => (contents ??= contentsOf(db));
  const file = (name: string, generate: () => string, mayCreate: (path: string) => void = () => undefined) => {
    if (database.kind !== 'sqlite' || database.path === ':memory:') return { value: generate(), created: false };
    const path = join(dirname(database.path), name);
    return loadOrCreate(path, generate, () => mayCreate(path));
  };
  const token = config.userTokenSecret
    ? { value: config.userTokenSecret, created: false }
    : file(SECRET_FILES.userToken, () => randomBytes(32).toString('base64url'));
  const piiText =
    config.piiKeys ??
    file(SECRET_FILES.piiKeys, () => newPiiKeyEntry(), (path) => {
      if (stored().encryptedData) {
        throw new ConfigError(
          `${path} is missing, but the database holds personal data encrypted under its keys: restore the file or set PII_KEYS (a new key could not read that data)`,
        );
      }
    }).value;
  try {
    const piiKeys = parsePiiKeys(piiText, config.piiKeys ? 'PII_KEYS' : SECRET_FILES.piiKeys);
    return { userTokenSecret: token.value, piiKeys, ...(token.created && stored().users ? { userTokenSecretReplaced: true } : {}) };
  } catch (error) {
    if (error instanceof PiiKeyError) throw new ConfigError(error.message);
    throw error;
  }
}
