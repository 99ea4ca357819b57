// Tenants and API keys: secrets are random, shown once, and stored only as a SHA-256 hash.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/database.js';
import { UUID } from '../users/users.ids.js';
import * as repo from './keys.repository.js';

export interface IssuedKey {
  client_id: string;
  api_key_id: string;
  api_key_secret: string;
}

export class KeyError extends Error {}

const API_KEY_ID = /^[0-9a-f]{32}$/;

// Secrets carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
const hashSecret = (secret: string) => createHash('sha256').update(secret).digest();

export async function createApiKey(db: Db, options: { name: string; clientId?: string }): Promise<IssuedKey> {
  const now = new Date().toISOString();
  let clientId = options.clientId;
  if (clientId === undefined) {
    clientId = randomUUID();
    await repo.insertClient(db, { id: clientId, name: options.name, created_at: now });
  } else if (!UUID.test(clientId) || !(await repo.findClientById(db, clientId))) {
    throw new KeyError(`No client with id ${clientId}`);
  }
  const apiKeyId = randomBytes(16).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  await repo.insertApiKey(db, {
    id: apiKeyId,
    client_id: clientId,
    name: options.name,
    secret_hash: hashSecret(secret).toString('hex'),
    created_at: now,
    revoked_at: null,
  });
  return { client_id: clientId, api_key_id: apiKeyId, api_key_secret: secret };
}

/** The client id the key belongs to, or undefined for an unknown, revoked or wrong key. */
export async function authenticateApiKey(db: Db, apiKeyId: string, secret: string): Promise<string | undefined> {
  // Anything that cannot be a key id never reaches the database.
  const key = API_KEY_ID.test(apiKeyId) ? await repo.findActiveApiKey(db, apiKeyId) : undefined;
  const given = hashSecret(secret);
  // Compare even for an unknown id, so timing does not reveal which ids exist.
  const stored = key ? Buffer.from(key.secret_hash, 'hex') : Buffer.alloc(given.length);
  return timingSafeEqual(given, stored) && key ? key.client_id : undefined;
}

export async function clientExists(db: Db, clientId: string): Promise<boolean> {
  return UUID.test(clientId) && (await repo.findClientById(db, clientId)) !== undefined;
}

export const listApiKeys = repo.listApiKeys;
export const countActiveApiKeys = repo.countActiveApiKeys;

export async function revokeApiKey(db: Db, id: string): Promise<boolean> {
  return API_KEY_ID.test(id) && repo.revokeApiKey(db, id, new Date().toISOString());
}
