// Bulk import of users from NDJSON (one create body per line), read and validated exactly as POST /v2/users; a line
// of `users-api export --format ndjson` also restores the user's id and created_at.
import type { Readable } from 'node:stream';
import { parseIsoMicros } from '../clock.js';
import { addFieldError, ApiError, errors, type FieldErrors } from '../errors.js';
import { parseJsonBody } from '../http/json-body.js';
import { createValidatorCompiler } from '../http/validation.js';
import { isIdOfInstant, UUIDV7 } from './users.ids.js';
import type { UserRow, UsersRepository } from './users.repository.js';
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

const DUPLICATE_ID = 'A user with this id exists already.';

/**
 * The id and created_at of an exported user, when the line carries them (the API ignores both, as read-only), into
 * `problems` otherwise. Both or neither; an id is a UUIDv7 that names its creation instant, so the two must agree,
 * as they do in every id this service makes (and list order stays creation order).
 */
function restoredIdentity(body: unknown, problems: FieldErrors): { id: string; createdAt: string } | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return undefined;
  const { id, created_at: createdAt } = body as { id?: unknown; created_at?: unknown };
  if (id === undefined && createdAt === undefined) return undefined;
  if (id === undefined || createdAt === undefined) {
    const [missing, given] = id === undefined ? ['id', 'created_at'] : ['created_at', 'id'];
    addFieldError(problems, [missing], `This field is required with ${given}.`);
    return undefined;
  }
  const micros = typeof createdAt === 'string' ? parseIsoMicros(createdAt) : undefined;
  if (micros === undefined) {
    addFieldError(problems, ['created_at'], 'Enter a UTC time with microseconds, as exported: 2023-03-09T04:54:35.170468Z.');
  }
  if (typeof id !== 'string' || !UUIDV7.test(id)) addFieldError(problems, ['id'], 'Enter a UUIDv7 in lower case, as exported.');
  else if (micros !== undefined && !isIdOfInstant(id, micros)) {
    addFieldError(problems, ['id'], 'This id was not made at created_at: an id (UUIDv7) carries its creation instant.');
  }
  return problems.id === undefined && problems.created_at === undefined ? { id: id as string, createdAt: createdAt as string } : undefined;
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
  let batch: UserRow[] = [];
  /** The line of each restored user in the batch, by id. */
  let restored = new Map<string, number>();
  const reject = (line: number, error: ApiError) => {
    progress.rejected++;
    options.onReject?.(line, error.body);
  };
  const flush = async () => {
    // A restored user the client has already (an import run twice) is rejected, not overwritten.
    const existing = restored.size === 0 ? new Set<string>() : await repo.existingUserIds(options.clientId, [...restored.keys()]);
    for (const id of existing) reject(restored.get(id)!, errors.validation({ id: [DUPLICATE_ID] }));
    const rows = existing.size === 0 ? batch : batch.filter((row) => !existing.has(row.id));
    await repo.insertUsers(rows);
    progress.imported += rows.length;
    batch = [];
    restored = new Map();
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
      const problems: FieldErrors = {};
      const identity = restoredIdentity(body, problems);
      if (result.error || Object.keys(problems).length > 0) throw errors.validation({ ...result.error?.body, ...problems } as FieldErrors);
      if (identity && restored.has(identity.id)) throw errors.validation({ id: [DUPLICATE_ID] });
      batch.push(newUserRow(options.clientId, body as UserInput, identity));
      if (identity) restored.set(identity.id, progress.read);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      reject(progress.read, error);
      continue;
    }
    if (batch.length >= batchSize) await flush();
  }
  await flush();
  return progress;
}
