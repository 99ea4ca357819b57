// The server secret: from USER_TOKEN_SECRET, or for an embedded store a key file kept beside the database.
import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** A separate key per purpose, so a cursor MAC can never be replayed as a token signature. */
export function deriveKey(secret: string, purpose: string): Uint8Array {
  return new Uint8Array(createHmac('sha256', secret).update(purpose).digest());
}

export function secretFilePath(sqlitePath: string): string {
  return join(dirname(sqlitePath), 'user-token.secret');
}

/** Reads the key file, creating it (owner-only) on first start. */
export function loadOrCreateSecretFile(path: string): string {
  if (existsSync(path)) {
    chmodSync(path, 0o600);
    return readFileSync(path, 'utf8').trim();
  }
  const secret = randomBytes(32).toString('base64url');
  writeFileSync(path, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  return secret;
}
