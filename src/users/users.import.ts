// Bulk import of users from NDJSON (one create body per line), validated exactly as POST /v2/users.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { ApiError } from '../errors.js';
import { createValidatorCompiler } from '../http/validation.js';
import type { UsersRepository } from './users.repository.js';
import { USER_FORMATS, UserInputSchema, type UserInput } from './users.schemas.js';
import { newUserRow } from './users.service.js';

export interface ImportProgress {
  read: number;
  imported: number;
  rejected: number;
}

export interface ImportOptions {
  clientId: string;
  batchSize?: number;
  /** Called after each batch is committed. */
  onProgress?: (progress: ImportProgress) => void;
  /** Called for each rejected line with its DRF-shaped errors. */
  onReject?: (line: number, errors: Record<string, unknown>) => void;
}

export async function importUsers(repo: UsersRepository, input: Readable, options: ImportOptions): Promise<ImportProgress> {
  const validate = createValidatorCompiler(USER_FORMATS)({
    schema: UserInputSchema,
    httpPart: 'body',
    method: 'POST',
    url: '/v2/users',
  }) as (data: unknown) => { value?: unknown; error?: ApiError };
  const batchSize = options.batchSize ?? 5000;
  const progress: ImportProgress = { read: 0, imported: 0, rejected: 0 };
  let batch: ReturnType<typeof newUserRow>[] = [];
  const flush = async () => {
    await repo.insertUsers(batch);
    progress.imported += batch.length;
    batch = [];
    options.onProgress?.({ ...progress });
  };

  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    progress.read++;
    if (line.trim() === '') continue;
    try {
      let body: unknown;
      try {
        body = JSON.parse(line);
      } catch (error) {
        throw new ApiError(400, { detail: `JSON parse error - ${(error as Error).message}` });
      }
      const result = validate(body);
      if (result.error) throw result.error;
      batch.push(newUserRow(options.clientId, body as UserInput));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      progress.rejected++;
      options.onReject?.(progress.read, error.body);
      continue;
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return progress;
}
