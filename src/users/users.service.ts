// The rules of the Users API: input to rows (merge patch), rows to the User shape, paging, tokens.
import { addFieldError, errors, type FieldErrors } from '../errors.js';
import { guarded, runTogether, WriteConflictError, type BoundWrite, type Planned } from '../db/prepared.js';
import type { EventWriter } from '../webhooks/webhooks.repository.js';
import type { UserTokens } from '../tokens/tokens.js';
import type { CursorCodec } from '../paging/cursor.js';
import { sortOrderOf, walkPage, type PageQuery } from '../paging/keyset.js';
import { timestampNow } from '../clock.js';
import { toE164 } from './users.formats.js';
import { canonicalUserId, newId } from './users.ids.js';
import type { UserRow, UsersRepository } from './users.repository.js';
import { usersCsv } from './users.export.js';
import { EXTERNAL_METADATA_MAX_BYTES, type ExportUsersQuery, type User, type UserInput } from './users.schemas.js';

const PATCH_ATTEMPTS = 20;

export interface ListQuery extends PageQuery {
  external_id?: string;
}

export interface UserPage {
  next: string | null;
  previous: string | null;
  results: User[];
}

const has = (input: object, key: string) => Object.hasOwn(input, key);
export const parseJson = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

const TEXT_COLUMNS = ['external_id', 'first_name', 'last_name', 'email', 'ssn'] as const;
const ADDRESS_COLUMNS = {
  city: 'address_city',
  line1: 'address_line1',
  line2: 'address_line2',
  state: 'address_state',
  country: 'address_country',
  postal_code: 'address_postal_code',
} as const;
const BIRTH_DATE_COLUMNS = { year: 'birth_year', month: 'birth_month', day: 'birth_day' } as const;

type Nested = Record<string, unknown>;

/** JSON merge patch (RFC 7396) of `patch` into `target`: null deletes a key, objects merge. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result: Nested = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

const END_USER_KEYS = ['name', 'address', 'city', 'state', 'zip', 'phone'] as const;

/** open_banking with only the contract's keys: unknown ones are ignored, never stored. */
function knownOpenBanking(value: UserInput['open_banking']): Nested | null {
  if (value == null) return null;
  if (!has(value, 'end_user')) return {};
  const endUser = value.end_user;
  if (endUser == null) return { end_user: null };
  return { end_user: Object.fromEntries(END_USER_KEYS.filter((k) => has(endUser, k)).map((k) => [k, endUser[k] ?? null])) };
}

/** Column changes for the fields present in `input`, applied over `current` (absent on create). */
function inputToColumns(input: UserInput, current: UserRow | undefined): Partial<UserRow> {
  const changes: Partial<UserRow> = {};
  for (const column of TEXT_COLUMNS) {
    if (has(input, column)) changes[column] = input[column] ?? null;
  }
  if (has(input, 'phone_number')) {
    changes.phone_number = input.phone_number == null ? null : (toE164(input.phone_number) ?? null);
  }
  for (const [field, columns] of [
    ['address', ADDRESS_COLUMNS],
    ['birth_date', BIRTH_DATE_COLUMNS],
  ] as const) {
    if (!has(input, field)) continue;
    const value = (input[field] ?? null) as Nested | null;
    for (const [key, column] of Object.entries(columns)) {
      if (value === null) (changes as Nested)[column] = null;
      else if (has(value, key)) (changes as Nested)[column] = value[key] ?? null;
    }
  }
  if (has(input, 'external_metadata')) {
    changes.external_metadata = input.external_metadata == null ? null : JSON.stringify(input.external_metadata);
  }
  if (has(input, 'open_banking')) {
    const merged = mergePatch(parseJson(current?.open_banking ?? null), knownOpenBanking(input.open_banking));
    changes.open_banking = merged === null ? null : JSON.stringify(merged);
  }
  return changes;
}

/** Rules that span fields or need the stored row: sizes and the calendar. */
function checkRow(row: UserRow, input: UserInput): void {
  const problems: FieldErrors = {};
  if (row.external_metadata !== null && Buffer.byteLength(row.external_metadata) > EXTERNAL_METADATA_MAX_BYTES) {
    addFieldError(
      problems,
      ['external_metadata'],
      `Ensure this value has no more than ${EXTERNAL_METADATA_MAX_BYTES} bytes when encoded as JSON.`,
    );
  }
  const { birth_year: year, birth_month: month, birth_day: day } = row;
  if (has(input, 'birth_date') && year !== null && month !== null && day !== null) {
    const date = new Date(Date.UTC(year, month - 1, day));
    if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
      addFieldError(problems, ['birth_date', 'non_field_errors'], 'Enter a valid date.');
    } else if (date.getTime() > Date.now()) {
      addFieldError(problems, ['birth_date', 'non_field_errors'], 'Birth date cannot be in the future.');
    }
  }
  if (Object.keys(problems).length > 0) throw errors.validation(problems);
}

export function userRowToUser(row: UserRow): User {
  return Object.assign(webhookUser(row), {
    ssn: row.ssn,
    address: {
      city: row.address_city,
      line1: row.address_line1,
      line2: row.address_line2,
      state: row.address_state,
      country: row.address_country,
      postal_code: row.address_postal_code,
    },
    birth_date: { year: row.birth_year, month: row.birth_month, day: row.birth_day },
  });
}

const EMPTY_ROW: Omit<UserRow, 'client_id' | 'id' | 'created_at' | 'updated_at'> = {
  version: 1,
  external_id: null,
  first_name: null,
  last_name: null,
  email: null,
  phone_number: null,
  ssn: null,
  address_city: null,
  address_line1: null,
  address_line2: null,
  address_state: null,
  address_country: null,
  address_postal_code: null,
  birth_year: null,
  birth_month: null,
  birth_day: null,
  external_metadata: '{}',
  open_banking: null,
  items_connected: '[]',
  employers_connected: '[]',
};

/**
 * The row for a new user from schema-valid input; throws a validation error for cross-field rules. `identity` is a
 * new id and its creation time unless a restored user's are given (users-api import of an exported line).
 */
export function newUserRow(clientId: string, input: UserInput, identity: { id: string; createdAt: string } = newId()): UserRow {
  const { id, createdAt } = identity;
  const row: UserRow = {
    ...EMPTY_ROW,
    client_id: clientId,
    id,
    created_at: createdAt,
    updated_at: createdAt,
    ...inputToColumns(input, undefined),
  };
  checkRow(row, input);
  return row;
}

/** The entity tag of a user's version: it changes on every write. */
export const etagOf = (version: number) => `"v${version}"`;

/** The versions an If-Match header accepts: any (`*`), or those of the strong ETags it lists. */
export type Precondition = { any: true } | { any: false; etags: string[] };

export function parseIfMatch(header: string | undefined): Precondition | undefined {
  if (header === undefined) return undefined;
  if (header.trim() === '*') return { any: true };
  return { any: false, etags: header.split(',').map((tag) => tag.trim()) };
}

function checkPrecondition(precondition: Precondition | undefined, version: number): void {
  if (precondition && !precondition.any && !precondition.etags.includes(etagOf(version))) {
    throw errors.preconditionFailed();
  }
}

export interface VersionedUser {
  user: User;
  etag: string;
}

const versioned = (row: UserRow): VersionedUser => ({ user: userRowToUser(row), etag: etagOf(row.version) });

/**
 * The user as a webhook may carry it: the API's object without SSN, birth date and address (never built, so never
 * dropped later by mistake), its fields in the API's order.
 */
export function webhookUser(row: UserRow): Omit<User, 'ssn' | 'birth_date' | 'address'> {
  return {
    id: row.id,
    created_at: row.created_at,
    items_connected: JSON.parse(row.items_connected) as string[],
    employers_connected: JSON.parse(row.employers_connected) as string[],
    external_metadata: parseJson(row.external_metadata),
    external_id: row.external_id,
    first_name: row.first_name,
    last_name: row.last_name,
    email: row.email,
    phone_number: row.phone_number,
  };
}

export class UsersService {
  constructor(
    private readonly repo: UsersRepository,
    private readonly tokens: UserTokens,
    private readonly cursors: CursorCodec,
    private readonly outbox: EventWriter,
  ) {}

  private events(row: UserRow, event: 'users.created' | 'users.updated' | 'users.removed'): Promise<BoundWrite[]> {
    return this.outbox.eventWrites(row.client_id, event, { user: row.id }, () => webhookUser(row));
  }

  /** A create, planned: its answer and its writes (the user, its events), for the caller to commit with more. */
  async planCreate(clientId: string, input: UserInput): Promise<Planned<{ user_token: string; id: string }>> {
    const row = newUserRow(clientId, input);
    return {
      value: { user_token: await this.tokens.mint(clientId, row.id), id: row.id },
      writes: [this.repo.bindInsert(row), ...(await this.events(row, 'users.created'))],
    };
  }

  async get(clientId: string, rawId: string): Promise<VersionedUser> {
    return versioned(await this.findRow(clientId, rawId));
  }

  /** With a precondition (If-Match) the update applies to that version only; without, it retries on conflict. */
  async update(clientId: string, rawId: string, input: UserInput, precondition?: Precondition): Promise<VersionedUser> {
    // Each attempt merges into the version it read and writes only if that version is still current,
    // so concurrent patches never mix.
    for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
      const current = await this.findRow(clientId, rawId);
      checkPrecondition(precondition, current.version);
      const next: UserRow = {
        ...current,
        ...inputToColumns(input, current),
        version: current.version + 1,
        updated_at: timestampNow(),
      };
      checkRow(next, input);
      try {
        await runTogether(this.repo.db, [guarded(this.repo.bindUpdate(next, current.version)), ...(await this.events(next, 'users.updated'))]);
        return versioned(next);
      } catch (error) {
        if (!(error instanceof WriteConflictError)) throw error;
      }
      if (precondition && !precondition.any) throw errors.preconditionFailed();
    }
    throw errors.unavailable();
  }

  /** Deletes the user (its accounts go in the same statement) with its users.removed events, at the version read. */
  async delete(clientId: string, rawId: string, precondition?: Precondition): Promise<void> {
    for (let attempt = 0; attempt < PATCH_ATTEMPTS; attempt++) {
      const current = await this.findRow(clientId, rawId);
      checkPrecondition(precondition, current.version);
      try {
        await runTogether(this.repo.db, [
          guarded(this.repo.bindRemove(clientId, current.id, current.version)),
          ...(await this.events(current, 'users.removed')),
        ]);
        this.repo.erased();
        return;
      } catch (error) {
        if (!(error instanceof WriteConflictError)) throw error;
      }
      // Changed (or deleted) meanwhile: with If-Match that is a failed precondition, else try the new version.
      if (precondition && !precondition.any) {
        throw (await this.repo.userExists(clientId, current.id)) ? errors.preconditionFailed() : errors.notFound();
      }
    }
    throw errors.unavailable();
  }

  /** A token for an existing user: nothing to write, but planned like a create so that it can be idempotent. */
  async planToken(clientId: string, rawId: string): Promise<Planned<{ user_token: string }>> {
    const id = canonicalUserId(rawId);
    if (id === undefined || !(await this.repo.userExists(clientId, id))) {
      throw errors.validation({ user: [`Invalid pk "${rawId}" - object does not exist.`] });
    }
    return { value: { user_token: await this.tokens.mint(clientId, id) }, writes: [] };
  }

  /** What Link's login screen is pre-filled with: nothing else of the user. */
  async prefill(clientId: string, userId: string) {
    const row = await this.findRow(clientId, userId);
    return { id: row.id, first_name: row.first_name, last_name: row.last_name, email: row.email, phone_number: row.phone_number };
  }

  exists(clientId: string, userId: string): Promise<boolean> {
    return this.repo.userExists(clientId, userId);
  }

  /** Whether a user token is valid now: signed here, unexpired, and its user still exists. */
  async introspectToken(clientId: string, token: string) {
    const claims = await this.tokens.verify(token);
    const userId = claims && canonicalUserId(claims.user_id);
    if (!claims || claims.client_id !== clientId || !userId || !(await this.repo.userExists(clientId, userId))) {
      return { active: false } as const;
    }
    return { active: true, user_id: claims.user_id, client_id: claims.client_id, exp: claims.exp, jti: claims.jti } as const;
  }

  async list(clientId: string, query: ListQuery, baseUrl: string): Promise<UserPage> {
    const { next, previous, rows } = await walkPage(
      this.repo.pages,
      this.cursors,
      clientId,
      'users',
      { limit: query.limit, cursor: query.cursor, ordering: query.ordering, filters: { external_id: query.external_id } },
      (cursor) => `${baseUrl}/v2/users?cursor=${cursor}`,
    );
    return { next, previous, results: rows.map(userRowToUser) };
  }

  /** GET /v2/users/export.csv: every user of the client (filtered and ordered as the list), a page at a time. */
  exportCsv(clientId: string, query: ExportUsersQuery): AsyncGenerator<string> {
    return usersCsv(this.repo, clientId, { externalId: query.external_id, order: sortOrderOf(query.ordering) });
  }

  private async findRow(clientId: string, rawId: string): Promise<UserRow> {
    const id = canonicalUserId(rawId);
    const row = id === undefined ? undefined : await this.repo.findUserById(clientId, id);
    if (!row) throw errors.notFound();
    return row;
  }
}
