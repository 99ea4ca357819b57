// Tenants and API keys: secrets are random, shown once, and stored only as a SHA-256 hash.
import { hash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { timestampNow } from '../clock.js';
import { storedTimeToIso, type Db } from '../db/database.js';
import { OperatorError } from '../errors.js';
import type { CursorCodec } from '../paging/cursor.js';
import { walkPage, type PageQuery } from '../paging/keyset.js';
import { UUID } from '../users/users.ids.js';
import * as repo from './keys.repository.js';
import type { ApiKey } from './keys.schemas.js';

export interface IssuedKey {
  client_id: string;
  api_key_id: string;
  api_key_secret: string;
}

/** A key as `keys list` shows it: named as in IssuedKey, times as the API writes them, never the secret's hash. */
export interface ListedKey {
  api_key_id: string;
  client_id: string;
  name: string;
  created_at: string;
  revoked_at: string | null;
}

export class KeyError extends OperatorError {}

const API_KEY_ID = /^[0-9a-f]{32}$/;

// Secrets carry 256 random bits, so a fast hash is enough: there is nothing to brute-force. The one-shot
// crypto.hash makes no Hash object: half the cost of createHash().update().digest() per request.
const hashSecret = (secret: string) => hash('sha256', secret, 'buffer');

export async function createApiKey(db: Db, options: { name: string; clientId?: string }): Promise<IssuedKey> {
  const now = timestampNow();
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

/**
 * Verifies API keys. A key found active in the store is remembered (its client and secret hash, never
 * the secret) for `ttlMs`, so most requests cost one SHA-256 and no query; a revocation therefore takes
 * effect within `ttlMs` on every instance.
 */
export class ApiKeyVerifier {
  private readonly known = new Map<string, { clientId: string; hash: Buffer; until: number }>();

  constructor(
    private readonly db: Db,
    private readonly ttlMs: number,
    private readonly maxEntries = 10_000,
  ) {}

  /** The client id the key belongs to, or undefined for an unknown, revoked or wrong key. */
  async verify(apiKeyId: string, secret: string): Promise<string | undefined> {
    const given = hashSecret(secret);
    let entry = this.known.get(apiKeyId);
    if (entry === undefined || entry.until < Date.now()) {
      // Anything that cannot be a key id never reaches the database.
      const key = API_KEY_ID.test(apiKeyId) ? await repo.findActiveApiKey(this.db, apiKeyId) : undefined;
      entry = key && { clientId: key.client_id, hash: Buffer.from(key.secret_hash, 'hex'), until: Date.now() + this.ttlMs };
      if (entry && this.ttlMs > 0) {
        if (this.known.size >= this.maxEntries) this.known.clear();
        this.known.set(apiKeyId, entry);
      } else {
        this.known.delete(apiKeyId);
      }
    }
    // Compare even for an unknown id, so timing does not reveal which ids exist.
    const stored = entry?.hash ?? Buffer.alloc(given.length);
    return timingSafeEqual(given, stored) && entry ? entry.clientId : undefined;
  }
}

export async function clientExists(db: Db, clientId: string): Promise<boolean> {
  return UUID.test(clientId) && (await repo.findClientById(db, clientId)) !== undefined;
}

export async function listApiKeys(db: Db): Promise<ListedKey[]> {
  return (await repo.listApiKeys(db)).map((row) => ({
    api_key_id: row.id,
    client_id: row.client_id,
    name: row.name,
    created_at: storedTimeToIso(row.created_at),
    revoked_at: row.revoked_at === null ? null : storedTimeToIso(row.revoked_at),
  }));
}

export const countActiveApiKeys = repo.countActiveApiKeys;

/** GET /v2/api-keys: a client's own keys, paged. */
export class ApiKeysService {
  private readonly pages;

  constructor(
    db: Db,
    private readonly cursors: CursorCodec,
  ) {
    this.pages = repo.apiKeyPages(db);
  }

  /** The keys of `clientId`; `currentKeyId` (the key making the request) is marked `current`. */
  async list(clientId: string, currentKeyId: string, query: PageQuery, baseUrl: string): Promise<{ next: string | null; previous: string | null; results: ApiKey[] }> {
    const { next, previous, rows } = await walkPage(this.pages, this.cursors, clientId, 'api-keys', { ...query, filters: {} }, (cursor) => `${baseUrl}/v2/api-keys?cursor=${cursor}`);
    const results = rows.map((row) => ({
      id: row.id,
      name: row.name,
      created_at: storedTimeToIso(row.created_at),
      revoked_at: row.revoked_at === null ? null : storedTimeToIso(row.revoked_at),
      current: row.id === currentKeyId,
    }));
    return { next, previous, results };
  }
}

export async function revokeApiKey(db: Db, id: string): Promise<boolean> {
  return API_KEY_ID.test(id) && repo.revokeApiKey(db, id, timestampNow());
}
