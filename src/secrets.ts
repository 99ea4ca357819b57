// Server secrets: from configuration, or for an embedded SQLite store kept in owner-only files beside the database.
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ConfigError, type Config } from './config.js';
import { newPiiKeyEntry, parsePiiKeys, PiiKeyError, type PiiKey } from './pii/pii.cipher.js';

/** A separate key per purpose, so a cursor MAC can never be replayed as a token signature. */
export function deriveKey(secret: string, purpose: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(purpose).digest());
}

/**
 * Reads a secret file, creating it (owner-only) with `generate()` on first use. The file holds the value
 * and nothing else (no newline), so its contents are the secret exactly; a newline added by an editor is ignored.
 */
function loadOrCreate(path: string, generate: () => string): string {
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    return readFileSync(path, 'utf8').trim();
  }
  const value = generate();
  writeFileSync(path, value, { mode: 0o600, flag: 'wx' });
  return value;
}

export interface Secrets {
  userTokenSecret: string;
  piiKeys: PiiKey[];
}

export const SECRET_FILES = { userToken: 'user-token.secret', piiKeys: 'pii.keys' } as const;

/**
 * Shared stores (PostgreSQL) take every secret from configuration, since all instances must agree;
 * an embedded store generates what is missing into files beside the database.
 */
export function resolveSecrets(config: Config): Secrets {
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
  const file = (name: string, generate: () => string) =>
    database.kind === 'sqlite' && database.path !== ':memory:'
      ? loadOrCreate(join(dirname(database.path), name), generate)
      : generate();
  const userTokenSecret = config.userTokenSecret ?? file(SECRET_FILES.userToken, () => randomBytes(32).toString('base64url'));
  const piiText = config.piiKeys ?? file(SECRET_FILES.piiKeys, () => newPiiKeyEntry());
  try {
    return { userTokenSecret, piiKeys: parsePiiKeys(piiText, config.piiKeys ? 'PII_KEYS' : SECRET_FILES.piiKeys) };
  } catch (error) {
    if (error instanceof PiiKeyError) throw new ConfigError(error.message);
    throw error;
  }
}
