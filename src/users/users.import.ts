// Bulk import of users from NDJSON (one create body per line), read and validated exactly as POST /v2/users.
import type { Readable } from 'node:stream';
import { ApiError, errors } from '../errors.js';
import { parseJsonBody } from '../http/json-body.js';
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
  /** The API's BODY_LIMIT: a longer line is rejected as the API rejects a longer body. */
  bodyLimit: number;
  batchSize?: number;
  /** Called after each batch is committed. */
  onProgress?: (progress: ImportProgress) => void;
  /** Called for each rejected line with its DRF-shaped errors. */
  onReject?: (line: number, errors: Record<string, unknown>) => void;
}

const NEWLINE = 0x0a;
const CR = 0x0d;

/**
 * The lines of `input` as bytes, without their \n (or \r\n): decoding is the body rule's business, so invalid UTF-8
 * is refused there instead of becoming U+FFFD. A line longer than `limit` bytes is yielded as null and never held:
 * its bytes are dropped up to the next newline, so memory stays within one line of `limit`.
 */
async function* ndjsonLines(input: Readable, limit: number): AsyncGenerator<Buffer | null> {
  let parts: Buffer[] = [];
  let length = 0;
  let tooLong = false;
  // One byte over the limit may still be the \r of a \r\n.
  const take = (part: Buffer) => {
    if (tooLong || part.length === 0) return;
    length += part.length;
    if (length > limit + 1) {
      tooLong = true;
      parts = [];
    } else parts.push(part);
  };
  const line = (): Buffer | null => {
    const whole = tooLong ? null : parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
    parts = [];
    length = 0;
    tooLong = false;
    const bytes = whole?.at(-1) === CR ? whole.subarray(0, -1) : whole;
    return bytes === null || bytes.length > limit ? null : bytes;
  };
  for await (const chunk of input) {
    const bytes: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let end = bytes.indexOf(NEWLINE); end !== -1; end = bytes.indexOf(NEWLINE, start)) {
      take(bytes.subarray(start, end));
      yield line();
      start = end + 1;
    }
    take(bytes.subarray(start));
  }
  if (length > 0 || tooLong) yield line();
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

  for await (const line of ndjsonLines(input, options.bodyLimit)) {
    progress.read++;
    try {
      if (line === null) throw errors.payloadTooLarge(options.bodyLimit);
      // A blank line is skipped, where an empty body is an empty user: a trailing newline must not make one.
      const body = parseJsonBody(line);
      if (body === undefined) continue;
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
