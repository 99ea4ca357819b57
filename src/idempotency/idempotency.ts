// Idempotency-Key: a retried request returns the first response instead of acting again, across instances.
import { createHash } from 'node:crypto';
import { isUniqueViolation, type Db } from '../db/database.js';
import { runTogether, type Planned } from '../db/prepared.js';
import { ApiError } from '../errors.js';
import type { PiiCipher } from '../pii/pii.cipher.js';
import { IdempotencyRepository, type IdempotencyRecord } from './idempotency.repository.js';

/** Keys are kept at least this long. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export const idempotencyErrors = {
  invalidKey: () => new ApiError(400, { detail: 'Idempotency-Key must be 1 to 255 visible ASCII characters.' }),
  reused: () =>
    new ApiError(422, {
      detail: 'Idempotency-Key was already used with a different request; use a new key for a new request.',
    }),
};

export interface IdempotentResult<T> {
  value: T;
  replayed: boolean;
}

export class Idempotency {
  private stored = 0;
  private readonly repo: IdempotencyRepository;

  constructor(
    private readonly db: Db,
    private readonly cipher: PiiCipher,
  ) {
    this.repo = new IdempotencyRepository(db);
  }

  /**
   * Runs `plan`'s writes once per (client, key), in one transaction with the record of the key and its
   * response: after any crash a key is either stored with the work it answers for, or neither exists. A retry
   * with the same request gets the stored response; a concurrent duplicate does the same work, fails on the
   * key when it commits (so its writes never happen), and replays the response of the one that committed.
   * Failures are not stored, so a retry after an error runs again.
   */
  async run<T>(
    clientId: string,
    key: string | undefined,
    scope: string,
    body: unknown,
    plan: () => Promise<Planned<T>>,
  ): Promise<IdempotentResult<T>> {
    if (key === undefined) {
      const { value, writes } = await plan();
      await runTogether(this.db, writes);
      return { value, replayed: false };
    }
    if (!KEY_PATTERN.test(key)) throw idempotencyErrors.invalidKey();
    const requestHash = createHash('sha256').update(JSON.stringify(body ?? null)).digest('hex');
    const context = `${clientId}/${key}/idempotency`;

    const replay = (record: IdempotencyRecord): IdempotentResult<T> => {
      if (record.scope !== scope || record.request_hash !== requestHash) throw idempotencyErrors.reused();
      return { value: JSON.parse(this.cipher.decrypt(record.response_body!, context)) as T, replayed: true };
    };
    const now = Date.now();
    const existing = await this.repo.findKey(clientId, key);
    if (existing) {
      // Expired, or a claim without a response left by an earlier version of this service: the key is free.
      if (existing.response_body === null || Date.parse(existing.created_at) < now - IDEMPOTENCY_TTL_MS) {
        await this.repo.deleteKey(clientId, key);
      } else {
        return replay(existing);
      }
    }

    const { value, writes } = await plan();
    const record = this.repo.bindInsert({
      client_id: clientId,
      key,
      scope,
      request_hash: requestHash,
      status_code: 200,
      response_body: this.cipher.encrypt(JSON.stringify(value), context),
      created_at: new Date(now).toISOString(),
    });
    try {
      await runTogether(this.db, [...writes, record]);
    } catch (error) {
      const winner = isUniqueViolation(error) ? await this.repo.findKey(clientId, key) : undefined;
      if (winner?.response_body) return replay(winner);
      throw error;
    }
    if (++this.stored % 500 === 0) {
      await this.repo.deleteKeysCreatedBefore(new Date(now - IDEMPOTENCY_TTL_MS).toISOString());
    }
    return { value, replayed: false };
  }
}
