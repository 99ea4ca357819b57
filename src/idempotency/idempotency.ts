// Idempotency-Key: a retried request returns the first response instead of acting again, across instances.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Db } from '../db/database.js';
import { ApiError } from '../errors.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { IdempotencyRepository } from './idempotency.repository.js';

/** Keys are kept at least this long. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export const idempotencyErrors = {
  invalidKey: () => new ApiError(400, { detail: 'Idempotency-Key must be 1 to 255 visible ASCII characters.' }),
  reused: () =>
    new ApiError(422, {
      detail: 'Idempotency-Key was already used with a different request; use a new key for a new request.',
    }),
  inProgress: () =>
    new ApiError(409, { detail: 'A request with this Idempotency-Key is still in progress; retry later.' }),
};

export interface IdempotentResult<T> {
  value: T;
  replayed: boolean;
}

export class Idempotency {
  private claims = 0;
  private readonly repo: IdempotencyRepository;

  constructor(
    db: Db,
    private readonly cipher: PiiCipher,
    private readonly options = { waitMs: 10_000, pollMs: 20 },
  ) {
    this.repo = new IdempotencyRepository(db);
  }

  /**
   * Runs `execute` once per (client, key). A retry with the same request gets the stored result; a
   * concurrent one waits for it. Failures are not stored, so a retry after an error runs again.
   */
  async run<T>(
    clientId: string,
    key: string | undefined,
    scope: string,
    body: unknown,
    execute: () => Promise<T>,
  ): Promise<IdempotentResult<T>> {
    if (key === undefined) return { value: await execute(), replayed: false };
    if (!KEY_PATTERN.test(key)) throw idempotencyErrors.invalidKey();
    const requestHash = createHash('sha256').update(JSON.stringify(body ?? null)).digest('hex');
    const context = `${clientId}/${key}/idempotency`;
    const deadline = Date.now() + this.options.waitMs;

    for (;;) {
      const now = new Date();
      const claimed = await this.repo.claimKey({
        client_id: clientId,
        key,
        scope,
        request_hash: requestHash,
        status_code: null,
        response_body: null,
        created_at: now.toISOString(),
      });
      if (claimed) {
        if (++this.claims % 500 === 0) {
          await this.repo.deleteKeysCreatedBefore(new Date(now.getTime() - IDEMPOTENCY_TTL_MS).toISOString());
        }
        try {
          const value = await execute();
          await this.repo.completeKey(clientId, key, 200, this.cipher.encrypt(JSON.stringify(value), context));
          return { value, replayed: false };
        } catch (error) {
          await this.repo.releaseKey(clientId, key);
          throw error;
        }
      }

      const existing = await this.repo.findKey(clientId, key);
      if (!existing) continue; // released by a failed first attempt: claim it again
      if (Date.parse(existing.created_at) < now.getTime() - IDEMPOTENCY_TTL_MS) {
        await this.repo.releaseKey(clientId, key);
        continue;
      }
      if (existing.scope !== scope || existing.request_hash !== requestHash) throw idempotencyErrors.reused();
      if (existing.response_body !== null) {
        return { value: JSON.parse(this.cipher.decrypt(existing.response_body, context)) as T, replayed: true };
      }
      if (Date.now() > deadline) throw idempotencyErrors.inProgress();
      await sleep(this.options.pollMs);
    }
  }
}
