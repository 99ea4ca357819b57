// Re-encryption of stored personal data under the encrypting key, refused while a live instance could not read it.
import type { Db } from '../db/database.js';
import { OperatorError } from '../errors.js';
import { describeInstance, liveInstances } from '../instances.js';
import { UsersRepository } from '../users/users.repository.js';
import type { PiiCipher } from './pii.cipher.js';

export class RotationRefusedError extends OperatorError {}

/** Throws naming every live instance that does not hold `keyId`. */
async function assertEveryInstanceHolds(db: Db, keyId: string, rewritten: number): Promise<void> {
  const lacking = (await liveInstances(db)).filter((instance) => !instance.piiKeyIds.includes(keyId));
  if (lacking.length === 0) return;
  const done = rewritten > 0 ? `stopped after re-encrypting ${rewritten} users: ` : 'refusing to re-encrypt: ';
  throw new RotationRefusedError(
    `${done}${lacking.map((i) => `${describeInstance(i)} does not hold PII key ${keyId}`).join('; ')}. ` +
      `Restart every instance with ${keyId} in PII_KEYS, then run pii rotate again`,
  );
}

/**
 * Rewrites every user whose personal data is under another key than `cipher`'s first, batch by batch.
 * Before each batch it checks the heartbeats of the live instances (src/instances.ts): while one of them
 * lacks the key, nothing (more) is written, so no instance is ever left with rows it cannot decrypt.
 */
export async function rotatePii(db: Db, cipher: PiiCipher, batchSize: number): Promise<number> {
  const repo = new UsersRepository(db, cipher);
  let rewritten = 0;
  let after: Parameters<UsersRepository['reencryptBatch']>[0];
  do {
    await assertEveryInstanceHolds(db, cipher.primaryKeyId, rewritten);
    const batch = await repo.reencryptBatch(after, batchSize);
    rewritten += batch.rewritten;
    after = batch.last;
  } while (after);
  return rewritten;
}
