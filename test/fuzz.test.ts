// Property-based fuzzing (fast-check) of every endpoint, on every store: arbitrary JSON bodies, byte sequences,
// content types, query strings, path segments, methods and header values. For every request:
//   - never a 5xx;
//   - every error is JSON in the documented shape: {"detail": "..."} or field errors whose leaves are string arrays;
//   - a rejected request leaves every stored row (users, idempotency keys, clients, API keys) unchanged.
// FUZZ_RUNS=<n> sets the runs per property (default 300: about 5,000 cases for the file on both stores, under 20 s).
// fast-check prints the seed and path of a failure; replay it with FUZZ_SEED=<seed> FUZZ_PATH=<path> and
// --test-name-pattern selecting that one property.
import assert from 'node:assert/strict';
import { METHODS } from 'node:http';
import { after, before, describe, it } from 'node:test';
import * as fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import type { Db } from '../src/db/database.js';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { basicAuth, createTestApi, createUser, snapshotUsers, STORES, type Response, type TestApi } from './helpers/app.js';

const DEFAULT_RUNS = 300;
const RUNS = positiveInteger(process.env.FUZZ_RUNS) ?? DEFAULT_RUNS;
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const PATH = process.env.FUZZ_PATH;
const BODY_LIMIT = 65_536;
/** Per property: generous for long runs, so only a hang fails on time. */
const TIMEOUT_MS = 60_000 + RUNS * 400;

function positiveInteger(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) throw new Error(`FUZZ_RUNS must be a positive integer, got "${raw}"`);
  return value;
}

function fuzzOptions(weight = 1): fc.Parameters<unknown> {
  return {
    numRuns: Math.max(1, Math.round(RUNS * weight)),
    ...(SEED === undefined || Number.isNaN(SEED) ? {} : { seed: SEED }),
    ...(PATH === undefined ? {} : { path: PATH }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------------------------

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));
/** One UTF-16 "character" of any kind: any code point, a lone surrogate, NUL, or a JSON/URL-significant one. */
const anyChar = fc.oneof(
  { weight: 10, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: loneSurrogate },
  { weight: 1, arbitrary: fc.constant('\u0000') },
  { weight: 2, arbitrary: fc.constantFrom('"', '\\', '\n', '\u2028', '\ufeff', '%', '/', '?', '#', '&', '=', '+', ' ', '\u00e9', '😀') },
);
const nastyString = fc.string({ unit: anyChar, maxLength: 30 });
const text = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 3, arbitrary: nastyString },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  // Around the length limits (20, 100, 150, 254, 255).
  { weight: 1, arbitrary: fc.constantFrom(19, 20, 21, 99, 100, 101, 149, 150, 151, 254, 255, 256, 1000).map((n) => 'x'.repeat(n)) },
);
const junkScalar = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(0, -1, 1e21, 2 ** 53 + 1, 1.5, -0),
);
const junk = fc.oneof(
  { weight: 3, arbitrary: junkScalar },
  { weight: 3, arbitrary: text },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2, stringUnit: anyChar }) },
);
/** A value for a field: plausible ones (so that some requests pass), or anything. */
const fieldValue = (...plausible: unknown[]) =>
  plausible.length === 0 ? junk : fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...plausible) }, { weight: 4, arbitrary: junk });
const partial = <T extends Record<string, fc.Arbitrary<unknown>>>(model: T) =>
  fc.oneof({ weight: 4, arbitrary: fc.record(model, { requiredKeys: [] }) }, { weight: 1, arbitrary: junk });

const deeplyNested = fc
  .tuple(fc.integer({ min: 1, max: 80 }), fc.boolean(), junkScalar)
  .map(([depth, arrays, leaf]) => {
    let value: unknown = leaf;
    for (let i = 0; i < depth; i++) value = arrays ? [value] : { k: value };
    return value;
  });
const metadata = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4, stringUnit: anyChar }) },
  { weight: 2, arbitrary: deeplyNested },
  { weight: 1, arbitrary: fc.constant({ big: 'm'.repeat(65_600) }) },
);
const name = fieldValue('Sarah', '', 'Zoë', "O'Brien", '名前');

/** Objects with the real field names (and some read-only and hostile ones) holding anything. */
const userObject = fc.record(
  {
    first_name: name,
    last_name: name,
    external_id: fieldValue('July_Connection', 'ext-1', ''),
    email: fieldValue('sarah@email.com', 'a@b.co', 'user+tag@example.org', '', ' ', 'a@b', '@', 'x@-x.com'),
    phone_number: fieldValue('(212) 555-5555', '+12125555555', '+442071838750', '212-555-5555 ext 1', '', '+1', '911'),
    ssn: fieldValue('123-45-6789', '123456789', '12345678', '123-45-678a', '', '---------'),
    address: partial({
      line1: fieldValue('1 Main St'),
      line2: fieldValue('Apt 2'),
      city: fieldValue('New York'),
      state: fieldValue('NY'),
      country: fieldValue('US', 'us', 'GB', 'XX', ''),
      postal_code: fieldValue('10001'),
    }),
    birth_date: partial({
      year: fieldValue(1900, 1899, 1990, 2000, 9999, 10_000, '1990', 1990.5),
      month: fieldValue(1, 2, 12, 0, 13, '2'),
      day: fieldValue(1, 28, 29, 30, 31, 32, 0),
    }),
    external_metadata: metadata,
    open_banking: partial({
      end_user: partial({
        name: fieldValue('Lender Inc'),
        address: fieldValue('2 Bank St'),
        city: fieldValue('Boston'),
        state: fieldValue('MA'),
        zip: fieldValue('02110'),
        phone: fieldValue('212-555-5555', '12125555555', '123', ''),
      }),
    }),
    id: junk,
    created_at: junk,
    items_connected: junk,
    // Computed, so that it is an own key named "__proto__" (as JSON.parse makes it), not the model's prototype.
    ['__proto__']: fc.jsonValue({ maxDepth: 2 }),
    constructor: junk,
  },
  { requiredKeys: [] },
);
const fieldKey = fc.oneof(
  fc.constantFrom('first_name', 'email', 'address', 'birth_date', 'external_metadata', 'open_banking', 'user', 'user_token', '__proto__', 'toString'),
  nastyString,
);
const userJson = fc.oneof(
  { weight: 6, arbitrary: userObject },
  { weight: 2, arbitrary: fc.dictionary(fieldKey, junk, { maxKeys: 6 }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3, stringUnit: anyChar }) },
);

/** UTF-8, except that lone surrogates become the 3-byte sequences a broken (CESU-8) encoder sends. */
function looseUtf8(value: string): Buffer {
  const parts: Buffer[] = [];
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (code >= 0xd800 && code <= 0xdfff) {
      parts.push(Buffer.from([0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]));
    } else {
      parts.push(Buffer.from(char, 'utf8'));
    }
  }
  return Buffer.concat(parts);
}

/** JSON.stringify, but lone surrogates left raw instead of escaped as \udXXX. */
const rawJson = (value: unknown) =>
  JSON.stringify(value).replace(/\\u(d[89a-f][0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));

/** A request body: JSON text (well-formed or mangled), raw bytes, nothing, or too much. */
const payloadOf = (json: fc.Arbitrary<unknown>): fc.Arbitrary<string | Buffer | undefined> =>
  fc.oneof(
    { weight: 10, arbitrary: json.map((value) => JSON.stringify(value)) },
    { weight: 2, arbitrary: json.map((value) => looseUtf8(rawJson(value))) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(json, fc.nat(), fc.nat({ max: 3 }), fc.string({ unit: anyChar, maxLength: 3 }))
        .map(([value, at, cut, insert]) => {
          const source = JSON.stringify(value) ?? '';
          const i = source.length === 0 ? 0 : at % source.length;
          return source.slice(0, i) + insert + source.slice(i + cut);
        }),
    },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.constantFrom(undefined, '', ' ', '\ufeff{}', 'null', '{}', '[]', '{"a":1}}', '\u00ff') },
    { weight: 1, arbitrary: fc.constant(JSON.stringify({ first_name: 'x'.repeat(BODY_LIMIT) })) },
  );

const headerChar = fc
  .oneof(
    { weight: 20, arbitrary: fc.integer({ min: 0x20, max: 0x7e }) },
    { weight: 1, arbitrary: fc.constant(0x09) },
    { weight: 3, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
  )
  .map((code) => String.fromCharCode(code));
/** Any value a header can carry on the wire (visible ASCII, space, tab, obs-text), without the whitespace HTTP strips. */
const headerValue = fc.string({ unit: headerChar, maxLength: 60 }).map((value) => value.replace(/^[ \t]+|[ \t]+$/g, ''));

const contentType = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/merge-patch+json', 'Application/JSON'),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/xml',
      'application/octet-stream',
      'application/json-seq',
      '*/*',
      'application/*',
      ';',
      'application/json; charset=latin1',
      'application/json;;',
      'application/json; boundary="',
      'application/json, text/plain',
    ),
  },
  { weight: 1, arbitrary: headerValue },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

/** Credentials: mostly the tenant's own (to get past auth), sometimes garbage that must be refused with 401. */
type AuthSpec =
  | { kind: 'valid' }
  | { kind: 'valid-variant'; scheme: string; spaces: string }
  | { kind: 'none' }
  | { kind: 'raw'; value: string }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'wrong-secret'; password: string }
  | { kind: 'missing-secret' };
const authSpec: fc.Arbitrary<AuthSpec> = fc.oneof(
  { weight: 16, arbitrary: fc.constant({ kind: 'valid' as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('valid-variant' as const), scheme: fc.constantFrom('basic', 'BASIC', 'Basic'), spaces: fc.constantFrom(' ', '  ') }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw' as const), value: headerValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('basic' as const), user: nastyString, password: nastyString }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('wrong-secret' as const), password: fc.string({ unit: 'grapheme-ascii', maxLength: 60 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'missing-secret' as const }) },
);

function authorization(spec: AuthSpec, key: IssuedKey): string | undefined {
  const b64 = (value: string) => Buffer.from(value, 'utf8').toString('base64');
  switch (spec.kind) {
    case 'valid':
      return basicAuth(key);
    case 'valid-variant':
      return `${spec.scheme}${spec.spaces}${b64(`${key.api_key_id}:${key.api_key_secret}`)}`;
    case 'none':
      return undefined;
    case 'raw':
      return spec.value;
    case 'basic':
      return `Basic ${b64(`${spec.user}:${spec.password}`)}`;
    case 'wrong-secret':
      return `Basic ${b64(`${key.api_key_id}:${spec.password === key.api_key_secret ? `${spec.password}x` : spec.password}`)}`;
    case 'missing-secret':
      return `Basic ${b64(key.api_key_id)}`;
  }
}
/** Credentials that can never authenticate: the request must be refused with 401 before anything else. */
const mustBeRefused = (spec: AuthSpec) => spec.kind !== 'valid' && spec.kind !== 'valid-variant';

const idempotencyKey = fc.option(
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom('fuzz-key-1', 'fuzz-key-2', 'fuzz-key-3') },
    { weight: 2, arbitrary: headerValue },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 250, maxLength: 260 }) },
  ),
  { nil: undefined, freq: 2 },
);

/** Extra headers a client might send, with garbage values; none of them may break anything. */
const extraHeaders = fc.dictionary(
  fc.constantFrom('x-request-id', 'accept', 'accept-encoding', 'accept-charset', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'host', 'if-none-match', 'range', 'origin', 'cookie', 'te'),
  headerValue,
  { maxKeys: 3 },
);

const UNRESERVED = /[A-Za-z0-9\-._~]/;
/** Percent-encodes every byte but the unreserved ones (lone surrogates as CESU-8 bytes). */
const percentEncode = (value: string) =>
  [...value]
    .map((char) =>
      UNRESERVED.test(char) ? char : [...looseUtf8(char)].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join(''),
    )
    .join('');
/** Characters that may stand raw in a request target, including the ones that change its meaning. */
const rawUrlChar = fc.constantFrom(...'abcXYZ019-._~!$&\'()*+,;=:@/?%#[]'.split(''));
const urlPiece = fc.oneof(
  { weight: 4, arbitrary: nastyString.map(percentEncode) },
  { weight: 2, arbitrary: fc.string({ unit: rawUrlChar, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '%ED%A0%80', '%C0%AF', '..', '.', '%2e%2e', '%2F') },
);

// ---------------------------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------------------------

interface FuzzRequest {
  method: string;
  url: string;
  auth?: AuthSpec;
  contentType?: string | undefined;
  payload?: string | Buffer | undefined;
  headers?: Record<string, string | undefined>;
}

/** Every status an error may have here (rate limiting and load shedding are off in these apps). */
const DOCUMENTED_ERRORS = new Set([400, 401, 404, 405, 412, 413, 415, 422]);
const INTERNALS = /\bat .+\.(ts|js):\d+|node_modules|FST_|stack|Error:|\/work\//g;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function assertFieldErrors(value: unknown, what: string, path: string): void {
  assert.ok(isObject(value) && Object.keys(value).length > 0, `field errors at "${path}" are not a non-empty object: ${what}`);
  for (const [key, leaf] of Object.entries(value)) {
    if (Array.isArray(leaf)) {
      assert.ok(leaf.length > 0, `empty message list at "${path}.${key}": ${what}`);
      for (const message of leaf) {
        assert.ok(typeof message === 'string' && message.length > 0, `a message at "${path}.${key}" is not a string: ${what}`);
      }
    } else {
      assertFieldErrors(leaf, what, `${path}.${key}`);
    }
  }
}

function strings(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (isObject(value)) return Object.entries(value).flatMap(([key, inner]) => [key, ...strings(inner)]);
  return [];
}

function inputText(request: FuzzRequest): string {
  const payload = request.payload === undefined ? '' : Buffer.isBuffer(request.payload) ? request.payload.toString('utf8') : request.payload;
  let url = request.url;
  try {
    url += decodeURIComponent(request.url);
  } catch {
    // not decodable: the raw form is enough
  }
  return [payload, url, request.contentType ?? '', ...Object.values(request.headers ?? {})].join('\n');
}

/** A 4xx in the documented shape, with nothing internal in it beyond what the request itself said. */
function assertDocumentedError(res: Response, request: FuzzRequest, what: string): void {
  assert.ok(DOCUMENTED_ERRORS.has(res.status), `undocumented error status: ${what}`);
  assert.match(String(res.headers['content-type']), /^application\/json/, `error is not JSON: ${what}`);
  if (request.method === 'HEAD') {
    assert.equal(res.body, '', what);
    return;
  }
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    assert.fail(`error body is not JSON: ${what}`);
  }
  assert.ok(isObject(body), `error body is not an object: ${what}`);
  if (Object.hasOwn(body, 'detail')) {
    assert.deepEqual(Object.keys(body), ['detail'], `"detail" comes alone: ${what}`);
    assert.ok(typeof body.detail === 'string' && body.detail.length > 0, `"detail" is not a string: ${what}`);
  } else {
    assertFieldErrors(body, what, '');
  }
  // Echoes of the request (a bad country code, a JSON parse position) may contain anything; nothing else may.
  const input = inputText(request);
  for (const message of strings(body)) {
    for (const match of message.matchAll(INTERNALS)) {
      assert.ok(input.includes(match[0]), `internal detail "${match[0]}" in an error: ${what}`);
    }
  }
  if (res.status === 401) assert.match(String(res.headers['www-authenticate']), /^Basic/, what);
  if (res.status === 405) assert.ok(res.headers.allow, `405 without Allow: ${what}`);
}

/** Everything stored: the users, the idempotency keys, the tenants and their keys. */
async function storedState(db: Db): Promise<string> {
  const users = await snapshotUsers(db);
  const keys = await db.selectFrom('idempotency_keys').selectAll().orderBy('client_id').orderBy('key').execute();
  const clients = await db.selectFrom('clients').selectAll().orderBy('id').execute();
  const apiKeys = await db.selectFrom('api_keys').selectAll().orderBy('id').execute();
  return JSON.stringify({ users, keys, clients, apiKeys });
}

const excerpt = (value: string | Buffer | undefined, max = 200) =>
  value === undefined ? '(none)' : JSON.stringify((Buffer.isBuffer(value) ? value.toString('latin1') : value).slice(0, max));

/**
 * Objects a request could pollute through a "__proto__" or "constructor" key: Object.prototype, Object, and the
 * functions hanging off both. Their own property names now, to notice (and undo) any addition.
 */
const GUARDED: object[] = [
  ...new Set<object>(
    [Object.prototype, Object].flatMap((base) => [
      base,
      ...Object.getOwnPropertyNames(base)
        .filter((name) => name !== '__proto__' && name !== 'caller' && name !== 'callee' && name !== 'arguments')
        .map((name) => (base as Record<string, unknown>)[name])
        .filter((value): value is object => typeof value === 'function'),
    ]),
  ),
];
const BASELINE = GUARDED.map((target) => new Set(Reflect.ownKeys(target)));

/** Properties added to the guarded built-ins since start (removed again, so one case cannot poison the next). */
function undoPollution(): string[] {
  const added: string[] = [];
  GUARDED.forEach((target, i) => {
    for (const key of Reflect.ownKeys(target)) {
      if (BASELINE[i]?.has(key)) continue;
      added.push(`${target === Object.prototype ? 'Object.prototype' : target === Object ? 'Object' : (target as { name?: string }).name}[${JSON.stringify(String(key))}]`);
      delete (target as Record<string | symbol, unknown>)[key];
    }
  });
  return added;
}

interface Ctx {
  api: TestApi;
  /** Tenant B and its user: never visible to tenant A. */
  other: IssuedKey;
  othersUser: string;
  othersToken: string;
  /** Tenant A's user that the PATCH fuzzing works on. */
  target: string;
  /** Tenant A's user that the DELETE fuzzing works on (recreated when a delete is accepted). */
  victim: string;
  /** An id of tenant A's that was deleted. */
  deleted: string;
  /** A valid cursor of tenant A's, and a valid user token for `target`. */
  cursor: string;
  token: string;
}

/**
 * Sends one fuzzed request and checks the three universal properties: no 5xx, errors in the documented shape,
 * nothing stored changed by a rejected request. On the /v2 endpoints (`authRequired`), credentials that cannot
 * authenticate must get 401. No request may pollute built-ins (undone here, so that one failure cannot change how
 * the next case behaves) and every response carries an X-Request-Id.
 */
async function exchange(ctx: Ctx, request: FuzzRequest, { as = ctx.api.tenant, authRequired = true } = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  for (const [key, value] of Object.entries(request.headers ?? {})) if (value !== undefined) headers[key] = value;
  const auth = authorization(request.auth ?? { kind: 'valid' }, as);
  if (auth !== undefined) headers.authorization = auth;
  if (request.contentType !== undefined) headers['content-type'] = request.contentType;
  const before = await storedState(ctx.api.db);
  const res = await ctx.api.request({
    method: request.method as InjectOptions['method'],
    url: request.url,
    headers,
    ...(request.payload === undefined ? {} : { payload: request.payload }),
    as: null,
  });
  const what =
    `${request.method} ${request.url.slice(0, 200)} content-type=${JSON.stringify(request.contentType)} ` +
    `body=${excerpt(request.payload)} -> ${res.status} ${res.body.slice(0, 300)}`;
  assert.deepEqual(undoPollution(), [], `built-ins were polluted: ${what}`);
  assert.ok(res.headers['x-request-id'], `no X-Request-Id: ${what}`);
  assert.ok(res.status < 500, `5xx: ${what}`);
  assert.ok(res.status >= 200, `unexpected status: ${what}`);
  if (res.status >= 400) {
    assertDocumentedError(res, request, what);
    assert.equal(await storedState(ctx.api.db), before, `a rejected request changed stored data: ${what}`);
  }
  if (authRequired && request.auth && mustBeRefused(request.auth)) {
    assert.equal(res.status, 401, `bad credentials were not refused: ${what}`);
  }
  return res;
}

/** The value the server parsed from a body, when it was a JSON object (else undefined). */
function parsedObject(payload: string | Buffer | undefined): Record<string, unknown> | undefined {
  if (payload === undefined) return undefined;
  try {
    // As the bytes on the wire: a string payload goes out as UTF-8, where a lone surrogate becomes U+FFFD.
    const value: unknown = JSON.parse(Buffer.from(payload).toString('utf8'));
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Accepted free text and metadata read back exactly as sent (on create, unsent ones have their defaults). */
function assertStoredAsSent(user: Record<string, unknown>, sent: Record<string, unknown>, what: string, creating: boolean): void {
  for (const field of ['first_name', 'last_name', 'external_id', 'external_metadata']) {
    if (Object.hasOwn(sent, field)) {
      assert.deepEqual(user[field], sent[field] ?? null, `${field} did not read back as sent: ${what}`);
    } else if (creating) {
      assert.deepEqual(user[field], field === 'external_metadata' ? {} : null, `${field} was not sent but is set: ${what}`);
    }
  }
}

/** After a fuzzed DELETE removed the target: a new one, and a token for it. */
async function replaceTarget(ctx: Ctx): Promise<void> {
  ctx.target = await createUser(ctx.api, { first_name: 'Target' });
  const token = await ctx.api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: ctx.target } });
  assert.equal(token.status, 200, token.body);
  ctx.token = token.json.user_token;
}

async function etagOf(ctx: Ctx, id: string): Promise<string> {
  const res = await ctx.api.request({ method: 'GET', url: `/v2/users/${id}` });
  assert.equal(res.status, 200, res.body);
  return String(res.headers.etag);
}

const ifMatchAccepts = (ifMatch: string | undefined, etag: string) =>
  ifMatch === undefined || ifMatch.trim() === '*' || ifMatch.split(',').map((tag) => tag.trim()).includes(etag);

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

for (const store of STORES) {
  describe(`fuzz: every endpoint (${store})`, () => {
    const ctx = {} as Ctx;
    let cases = 0;
    let started = 0;

    before(async () => {
      started = Date.now();
      ctx.api = await createTestApi(store, { BODY_LIMIT: String(BODY_LIMIT) });
      const { api } = ctx;
      ctx.other = await api.newTenant('fuzz-other');
      ctx.othersUser = await createUser(api, { first_name: 'Othertenant', ssn: '987-65-4321' }, ctx.other);
      const othersToken = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: ctx.othersUser }, as: ctx.other });
      ctx.othersToken = othersToken.json.user_token;
      ctx.target = await createUser(api, {
        first_name: 'Target',
        last_name: 'User',
        email: 'target@example.com',
        phone_number: '+12125555555',
        ssn: '123-45-6789',
        external_id: 'fuzz-target',
        address: { line1: '1 Main St', city: 'New York', state: 'NY', country: 'US', postal_code: '10001' },
        birth_date: { year: 1990, month: 2, day: 28 },
        external_metadata: { tier: 'gold' },
      });
      ctx.victim = await createUser(api, { first_name: 'Victim' });
      ctx.deleted = await createUser(api, { first_name: 'Deleted' });
      assert.equal((await api.request({ method: 'DELETE', url: `/v2/users/${ctx.deleted}` })).status, 204);
      const page = await api.request({ method: 'GET', url: '/v2/users?limit=1' });
      ctx.cursor = new URL(page.json.next).searchParams.get('cursor') ?? '';
      assert.ok(ctx.cursor);
      const token = await api.request({ method: 'POST', url: '/v2/user-tokens', payload: { user: ctx.target } });
      ctx.token = token.json.user_token;
    });

    after(async () => {
      console.log(`# fuzz (${store}): ${cases} cases in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      // The other tenant's user was never touched by anything tenant A sent.
      const theirs = await ctx.api.request({ method: 'GET', url: `/v2/users/${ctx.othersUser}`, as: ctx.other });
      try {
        assert.equal(theirs.status, 200);
        assert.equal(theirs.json.first_name, 'Othertenant');
        assert.equal(theirs.json.ssn, '987-65-4321');
      } finally {
        await ctx.api.close();
      }
    });

    /** Runs one property with the shared options; counts the cases. */
    const check = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, weight = 1) =>
      fc.assert(
        fc.asyncProperty(arbitrary, async (value) => {
          cases++;
          await predicate(value);
        }),
        fuzzOptions(weight) as fc.Parameters<[T]>,
      );

    it('POST /v2/users: arbitrary bodies, bytes, content types, Idempotency-Keys and credentials', { timeout: TIMEOUT_MS }, async () => {
      await check(
        fc.record({ auth: authSpec, payload: payloadOf(userJson), contentType, key: idempotencyKey, extra: extraHeaders }),
        async ({ auth, payload, contentType, key, extra }) => {
          const request = { method: 'POST', url: '/v2/users', auth, payload, contentType, headers: { ...extra, 'idempotency-key': key } };
          const res = await exchange(ctx, request);
          if (res.status !== 200) return;
          const what = `POST /v2/users body=${excerpt(payload)}`;
          assert.deepEqual(Object.keys(res.json).sort(), ['id', 'user_token'], what);
          if (res.headers['idempotent-replayed'] === 'true') return;
          const user = await ctx.api.request({ method: 'GET', url: `/v2/users/${res.json.id}` });
          assert.equal(user.status, 200, `an acknowledged create is not readable: ${what}`);
          assertStoredAsSent(user.json, parsedObject(payload) ?? {}, what, true);
          // Keep the table small: the snapshots around every request stay cheap.
          assert.equal((await ctx.api.request({ method: 'DELETE', url: `/v2/users/${res.json.id}` })).status, 204);
        },
        1.5,
      );
    });

    it('PATCH /v2/users/{id}: arbitrary bodies, bytes, content types, If-Match and credentials', { timeout: TIMEOUT_MS }, async () => {
      const ifMatch = fc.option(
        fc.oneof(
          fc.constantFrom('CURRENT', '*', '"v1"', 'W/"v1"', '"v999"', '', ',', '"v1", CURRENT', 'CURRENT-weak'),
          headerValue,
        ),
        { nil: undefined, freq: 2 },
      );
      await check(
        fc.record({ auth: authSpec, payload: payloadOf(userJson), contentType, ifMatch, extra: extraHeaders }),
        async ({ auth, payload, contentType, ifMatch, extra }) => {
          const etag = await etagOf(ctx, ctx.target);
          const condition = ifMatch?.replace('CURRENT-weak', `W/${etag}`).replace('CURRENT', etag);
          const request = {
            method: 'PATCH',
            url: `/v2/users/${ctx.target}`,
            auth,
            payload,
            contentType,
            headers: { ...extra, 'if-match': condition },
          };
          const res = await exchange(ctx, request);
          if (res.status !== 200) return;
          const what = `PATCH If-Match=${JSON.stringify(condition)} (current ${etag}) body=${excerpt(payload)}`;
          assert.ok(ifMatchAccepts(condition, etag), `applied despite If-Match not naming the current version: ${what}`);
          assert.equal(res.json.id, ctx.target, what);
          assert.ok(res.headers.etag && res.headers.etag !== etag, `no new ETag after an update: ${what}`);
          assertStoredAsSent(res.json, parsedObject(payload) ?? {}, what, false);
          const again = await ctx.api.request({ method: 'GET', url: `/v2/users/${ctx.target}` });
          assert.deepEqual(again.json, res.json, `the PATCH answer is not what is stored: ${what}`);
        },
        1.5,
      );
    });

    it('GET/HEAD/PATCH/DELETE /v2/users/{id}: arbitrary ids, other tenants\' and deleted ids are 404', { timeout: TIMEOUT_MS }, async () => {
      const idSegment = fc.oneof(
        { weight: 4, arbitrary: urlPiece },
        { weight: 1, arbitrary: fc.uuid().map((id) => ({ isolated: id })) },
        { weight: 2, arbitrary: fc.constant({ isolated: 'OTHER' }) },
        { weight: 1, arbitrary: fc.constant({ isolated: 'DELETED' }) },
        {
          weight: 2,
          arbitrary: fc.tuple(fc.nat(), fc.constantFrom('0', 'f', 'g', '-', '%00', ''), fc.boolean()).map(([at, char, upper]) => ({ mutated: { at, char, upper } })),
        },
        { weight: 1, arbitrary: fc.integer({ min: 90, max: 120 }).map((n) => 'a'.repeat(n)) },
      );
      await check(
        fc.record({
          method: fc.constantFrom('GET', 'HEAD', 'PATCH', 'DELETE'),
          id: idSegment,
          auth: authSpec,
          payload: payloadOf(userJson),
          contentType,
          extra: extraHeaders,
        }),
        async ({ method, id, auth, payload, contentType, extra }) => {
          if (typeof id === 'object' && 'isolated' in id) {
            // Isolation: with valid credentials and a valid request, someone else's or a gone user is just not found.
            const segment = id.isolated === 'OTHER' ? ctx.othersUser : id.isolated === 'DELETED' ? ctx.deleted : id.isolated;
            const request = {
              method,
              url: `/v2/users/${segment}`,
              auth,
              ...(method === 'PATCH' ? { payload: '{"first_name":"Mallory","external_metadata":{"x":1}}', contentType: 'application/json' } : {}),
              headers: extra,
            };
            const res = await exchange(ctx, request);
            if (!mustBeRefused(auth)) {
              assert.equal(res.status, 404, `${method} ${id.isolated} ${segment}: ${res.status} ${res.body}`);
              if (method !== 'HEAD') assert.deepEqual(res.json, { detail: 'Not found.' });
              assert.doesNotMatch(res.body, /Othertenant|987-65-4321|Deleted/);
            }
            return;
          }
          let segment: string;
          if (typeof id === 'object') {
            const { at, char, upper } = id.mutated;
            const base = upper ? ctx.target.toUpperCase() : ctx.target;
            const i = at % (base.length + 1);
            segment = base.slice(0, i) + char + base.slice(i + 1);
          } else {
            segment = id;
          }
          const url = `/v2/users/${segment}`;
          // A segment that breaks the path ("a/b", bad percent-encoding) names no route: 404 before authentication.
          const authRequired = typeof id === 'object';
          const res = await exchange(ctx, { method, url, auth, payload, contentType, headers: extra }, { authRequired });
          // An empty segment or dots leave the collection itself (GET /v2/users/ is the list, by ignoreTrailingSlash).
          // ("?" and "#" end the path: what follows is the query or the fragment.)
          const pathPart = segment.split(/[?#]/)[0] ?? '';
          const collection = /^[./]*$/.test(pathPart) && (method === 'GET' || method === 'HEAD');
          if (res.status < 300 && !collection) {
            // Only the target itself (in any letter case, with or without a trailing slash) may be found.
            assert.equal(
              pathPart.replace(/\/$/, '').toLowerCase(),
              ctx.target,
              `${method} ${url} found something: ${res.status} ${res.body.slice(0, 200)}`,
            );
            if (method === 'DELETE') {
              await replaceTarget(ctx);
            }
          }
        },
      );
    });

    it('GET /v2/users: arbitrary query strings (limit, external_id, cursor and others, garbage values)', { timeout: TIMEOUT_MS }, async () => {
      const paramName = fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom('limit', 'external_id', 'cursor') },
        { weight: 1, arbitrary: fc.constantFrom('limit[]', 'cursor[x]', '__proto__', 'constructor', 'offset', 'page', '') },
        { weight: 1, arbitrary: urlPiece },
      );
      const cursorMutation = fc.tuple(fc.nat(), fc.string({ unit: rawUrlChar, maxLength: 2 }), fc.nat({ max: 2 }));
      const paramValue = fc.oneof(
        { weight: 3, arbitrary: urlPiece },
        { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.bigInt()).map(String).map(percentEncode) },
        { weight: 1, arbitrary: fc.constantFrom('1', '10', '200', '201', '0', '-1', '1e3', '0x10', ' 1', '1.0', '99999999999999999999', 'fuzz-target', '') },
        { weight: 2, arbitrary: fc.constant('CURSOR') },
        { weight: 2, arbitrary: cursorMutation.map((m) => ({ mutate: m })) },
      );
      await check(
        fc.record({
          params: fc.array(fc.tuple(paramName, paramValue, fc.boolean()), { maxLength: 4 }),
          auth: authSpec,
          extra: extraHeaders,
        }),
        async ({ params, auth, extra }) => {
          const query = params
            .map(([key, value, bare]) => {
              let v: string;
              if (value === 'CURSOR') v = ctx.cursor;
              else if (typeof value === 'object') {
                const [at, insert, cut] = value.mutate;
                const i = at % (ctx.cursor.length + 1);
                v = ctx.cursor.slice(0, i) + insert + ctx.cursor.slice(i + cut);
              } else v = value;
              return bare && v === '' ? key : `${key}=${v}`;
            })
            .join('&');
          const url = `/v2/users${query === '' ? '' : `?${query}`}`;
          const res = await exchange(ctx, { method: 'GET', url, auth, headers: extra });
          if (res.status !== 200) return;
          assert.deepEqual(Object.keys(res.json), ['next', 'previous', 'results'], url);
          assert.ok(Array.isArray(res.json.results) && res.json.results.length <= 200, url);
          const ids = res.json.results.map((user: { id: string }) => user.id);
          assert.ok(!ids.includes(ctx.othersUser), `another tenant's user was listed: ${url}`);
          assert.ok(!ids.includes(ctx.deleted), `a deleted user was listed: ${url}`);
        },
      );
    });

    it('POST /v2/user-tokens: arbitrary bodies and users (other tenants\' and deleted ones are 404)', { timeout: TIMEOUT_MS }, async () => {
      const user = fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom('TARGET', 'OTHER', 'DELETED') },
        { weight: 1, arbitrary: fc.uuid() },
        { weight: 2, arbitrary: junk },
      );
      const body = fc.oneof(
        { weight: 3, arbitrary: fc.record({ user }, { requiredKeys: [] }) },
        { weight: 1, arbitrary: fc.record({ user, extra: junk }) },
        { weight: 1, arbitrary: userJson },
      );
      const resolve = (value: unknown): unknown => {
        if (isObject(value) && typeof value.user === 'string') {
          const id = { TARGET: ctx.target, OTHER: ctx.othersUser, DELETED: ctx.deleted }[value.user];
          if (id) return { ...value, user: id };
        }
        return value;
      };
      await check(
        fc.record({ auth: authSpec, body, encoding: payloadOf(fc.constant(null)), mangle: fc.nat({ max: 4 }), contentType, key: idempotencyKey }),
        async ({ auth, body, encoding, mangle, contentType, key }) => {
          const json = resolve(body);
          // Mostly the generated JSON itself; sometimes another body entirely (bytes, mangled text, nothing).
          const payload = mangle === 0 ? encoding : JSON.stringify(json);
          const res = await exchange(ctx, { method: 'POST', url: '/v2/user-tokens', auth, payload, contentType, headers: { 'idempotency-key': key } });
          const what = `POST /v2/user-tokens body=${excerpt(payload)} -> ${res.status} ${res.body.slice(0, 200)}`;
          const userId = isObject(json) && payload === JSON.stringify(json) ? json.user : undefined;
          if (res.status === 200) {
            assert.deepEqual(Object.keys(res.json), ['user_token'], what);
            if (res.headers['idempotent-replayed'] !== 'true') {
              assert.equal(userId, ctx.target, `a token was minted for a user that is not the tenant's: ${what}`);
            }
          }
          if (userId === ctx.othersUser || userId === ctx.deleted) assert.notEqual(res.status, 200, what);
        },
      );
    });

    it('POST /v2/user-tokens/introspect: arbitrary bodies and tokens (another tenant\'s token is inactive)', { timeout: TIMEOUT_MS }, async () => {
      const token = fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom('TOKEN', 'OTHER') },
        {
          weight: 2,
          arbitrary: fc.tuple(fc.nat(), fc.string({ unit: anyChar, maxLength: 2 }), fc.nat({ max: 3 })).map((m) => ({ mutate: m })),
        },
        { weight: 2, arbitrary: junk },
        { weight: 1, arbitrary: fc.constantFrom('', '.', '..', 'a.b.c', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', 'x'.repeat(5000)) },
      );
      const body = fc.oneof(
        { weight: 4, arbitrary: fc.record({ user_token: token }, { requiredKeys: [] }) },
        { weight: 1, arbitrary: fc.record({ user_token: token, more: junk }) },
        { weight: 1, arbitrary: userJson },
      );
      const resolve = (value: unknown): unknown => {
        if (!isObject(value)) return value;
        const t = value.user_token;
        if (t === 'TOKEN') return { ...value, user_token: ctx.token };
        if (t === 'OTHER') return { ...value, user_token: ctx.othersToken };
        if (isObject(t) && Array.isArray(t.mutate)) {
          const [at, insert, cut] = t.mutate as [number, string, number];
          const i = at % (ctx.token.length + 1);
          return { ...value, user_token: ctx.token.slice(0, i) + insert + ctx.token.slice(i + cut) };
        }
        return value;
      };
      await check(
        fc.record({ auth: authSpec, body: body.map((b) => b), encoding: payloadOf(fc.constant(null)), mangle: fc.nat({ max: 4 }), contentType }),
        async ({ auth, body, encoding, mangle, contentType }) => {
          const json = resolve(body);
          const payload = mangle === 0 ? encoding : JSON.stringify(json);
          const res = await exchange(ctx, { method: 'POST', url: '/v2/user-tokens/introspect', auth, payload, contentType });
          if (res.status !== 200) return;
          const what = `introspect body=${excerpt(payload)} -> ${res.body.slice(0, 200)}`;
          assert.equal(typeof res.json.active, 'boolean', what);
          if (res.json.active) {
            assert.equal(res.json.user_id, ctx.target, `an active token for someone else: ${what}`);
          } else {
            assert.deepEqual(res.json, { active: false }, `an inactive token reveals something: ${what}`);
          }
          const sent = isObject(json) && payload === JSON.stringify(json) ? json.user_token : undefined;
          if (sent === ctx.othersToken) assert.deepEqual(res.json, { active: false }, `another tenant's token is active: ${what}`);
          if (sent === ctx.token) assert.equal(res.json.active, true, `a valid token is inactive: ${what}`);
        },
      );
    });

    it('DELETE /v2/users/{id} with arbitrary If-Match: applied only to the current version', { timeout: TIMEOUT_MS }, async () => {
      const ifMatch = fc.option(
        fc.oneof(fc.constantFrom('CURRENT', '*', '"v0"', '"v2"', 'W/CURRENT', '', '"CURRENT"', 'CURRENT, "v9"'), headerValue),
        { nil: undefined, freq: 8 },
      );
      await check(
        fc.record({ auth: authSpec, ifMatch, payload: fc.option(payloadOf(userJson), { nil: undefined, freq: 4 }), contentType }),
        async ({ auth, ifMatch, payload, contentType }) => {
          const etag = await etagOf(ctx, ctx.victim);
          const condition = ifMatch?.replace('CURRENT', etag);
          const request = { method: 'DELETE', url: `/v2/users/${ctx.victim}`, auth, payload, contentType, headers: { 'if-match': condition } };
          const res = await exchange(ctx, request);
          if (res.status >= 300) return;
          assert.equal(res.status, 204, res.body);
          assert.ok(ifMatchAccepts(condition, etag), `deleted despite If-Match ${JSON.stringify(condition)} (current ${etag})`);
          const gone = await ctx.api.request({ method: 'GET', url: `/v2/users/${ctx.victim}` });
          assert.equal(gone.status, 404);
          ctx.victim = await createUser(ctx.api, { first_name: 'Victim' });
        },
        0.5,
      );
    });

    it('odd methods and paths: 404/405 in the documented shape, nothing changed', { timeout: TIMEOUT_MS }, async () => {
      const methods = METHODS.filter((method) => method !== 'CONNECT');
      const path = fc.oneof(
        {
          weight: 3,
          arbitrary: fc
            .tuple(
              fc.constantFrom('', '/v2', '/v2/users', '/v2/user-tokens', '/v2/user-tokens/introspect', '/v2/users/TARGET', '/docs', '/openapi.json', '/healthz', '/v1'),
              fc.array(urlPiece, { maxLength: 3 }),
            )
            .map(([prefix, pieces]) => `${prefix}/${pieces.join('/')}`),
        },
        { weight: 2, arbitrary: fc.webPath({ size: 'small' }).map((p) => (p.startsWith('/') ? p : `/${p}`)) },
        {
          weight: 2,
          arbitrary: fc.constantFrom(
            '/v2/users',
            '/v2/users/TARGET',
            '/v2/user-tokens',
            '/v2/user-tokens/introspect',
            '//v2/users',
            '/v2//users',
            '/v2/users/',
            '/V2/USERS',
            '/v2/users/TARGET/tokens',
            '/v2/user-tokens/TARGET',
            '/docs/static/index.html',
            '/docs/static/../../package.json',
            '/docs/static/%2e%2e/%2e%2e/package.json',
            '/docs/nothing',
            '/openapi.json/x',
            '/readyz/x',
          ),
        },
      );
      await check(
        fc.record({
          method: fc.constantFrom(...methods),
          path,
          auth: fc.oneof(authSpec, fc.constant({ kind: 'none' } as AuthSpec)),
          payload: fc.option(payloadOf(userJson), { nil: undefined, freq: 2 }),
          contentType,
          extra: extraHeaders,
        }),
        async ({ method, path, auth, payload, contentType, extra }) => {
          const url = path.replace('TARGET', ctx.target);
          // Methods no route serves are 404 before any authentication (nothing is there to protect).
          const res = await exchange(ctx, { method, url, auth, payload, contentType, headers: extra }, { authRequired: false });
          if (res.status === 200 && method === 'POST' && typeof res.json?.id === 'string' && res.json.user_token) {
            // A create through an equivalent path (/v2/users/, //v2/users...): remove it again.
            assert.equal((await ctx.api.request({ method: 'DELETE', url: `/v2/users/${res.json.id}` })).status, 204);
          }
          if (res.status === 204 && method === 'DELETE' && url.includes(ctx.target)) await replaceTarget(ctx);
        },
      );
    });
    it(
      'no body pollutes Object.prototype or Object: "__proto__"/"constructor" keys are refused like any other key',
      {
        timeout: TIMEOUT_MS,
      },
      async () => {
        const protoKey = fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf');
        const badValue = fc.oneof(
          fc.constantFrom('\u0000', '\ud800', 'a\u0000b'),
          fc.constant(JSON.parse('['.repeat(40) + ']'.repeat(40)) as unknown),
        );
        const where = fc.constantFrom('top', 'address', 'end_user', 'metadata', 'tokens', 'introspect');
        await check(
          fc.record({ protoKey, name: fc.oneof(fc.constantFrom('isAdmin', 'polluted', 'idempotency-key', 'detail'), fc.string({ maxLength: 8 })), badValue, where, second: fc.option(protoKey, { nil: undefined }) }),
          async ({ protoKey, name, badValue, where, second }) => {
            const inner = second === undefined ? `{${JSON.stringify(name)}:${JSON.stringify(badValue)}}` : `{"${second}":{${JSON.stringify(name)}:${JSON.stringify(badValue)}}}`;
            const body = (key: string) => {
              const evil = `{"${key}":${inner}}`;
              switch (where) {
                case 'top':
                  return ['/v2/users', evil];
                case 'address':
                  return ['/v2/users', `{"address":${evil}}`];
                case 'end_user':
                  return ['/v2/users', `{"open_banking":{"end_user":${evil}}}`];
                case 'metadata':
                  return ['/v2/users', `{"external_metadata":${evil}}`];
                case 'tokens':
                  return ['/v2/user-tokens', `{"user":"${ctx.target}","more":${evil}}`];
                default:
                  return ['/v2/user-tokens/introspect', `{"user_token":"x","more":${evil}}`];
              }
            };
            const [url = '', payload] = body(protoKey);
            const res = await ctx.api.request({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
            const polluted = undoPollution();
            // The same body with a harmless key in place of the special one: the answer must be the same.
            const [, plain] = body('harmless');
            const control = await ctx.api.request({ method: 'POST', url, payload: plain, headers: { 'content-type': 'application/json' } });
            assert.deepEqual(polluted, [], `POST ${url} ${payload} polluted built-ins (answered ${res.status} ${res.body.slice(0, 100)})`);
            assert.equal(res.status, control.status, `POST ${url} ${payload}: ${res.status} ${res.body.slice(0, 200)}, with "harmless": ${control.status} ${control.body.slice(0, 200)}`);
            if (res.status === 200 && url === '/v2/users' && !res.headers['idempotent-replayed']) {
              await ctx.api.request({ method: 'DELETE', url: `/v2/users/${res.json.id}` });
            }
            if (control.status === 200 && url === '/v2/users') await ctx.api.request({ method: 'DELETE', url: `/v2/users/${control.json.id}` });
          },
          0.3,
        );
      },
    );

    it(
      'every response carries an X-Request-Id (echoed when given) and the security headers, whatever the path',
      {
        timeout: TIMEOUT_MS,
      },
      async () => {
        await check(
          fc.record({
            method: fc.constantFrom('GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'PUT', 'OPTIONS'),
            prefix: fc.constantFrom('', '/v2', '/v2/users', '/v2/user-tokens'),
            pieces: fc.array(urlPiece, { minLength: 1, maxLength: 2 }),
            requestId: fc.option(fc.stringMatching(/^[A-Za-z0-9-]{1,36}$/), { nil: undefined }),
          }),
          async ({ method, prefix, pieces, requestId }) => {
            const url = `${prefix}/${pieces.join('/')}`;
            const res = await ctx.api.request({
              method: method as InjectOptions['method'],
              url,
              headers: requestId === undefined ? {} : { 'x-request-id': requestId },
            });
            undoPollution();
            const what = `${method} ${url} -> ${res.status} ${res.body.slice(0, 100)}`;
            assert.ok(res.status < 500, what);
            if (requestId === undefined) assert.match(String(res.headers['x-request-id']), /^[0-9a-f-]{36}$/, `no X-Request-Id: ${what}`);
            else assert.equal(res.headers['x-request-id'], requestId, `X-Request-Id not echoed: ${what}`);
            assert.equal(res.headers['x-content-type-options'], 'nosniff', `no security headers: ${what}`);
          },
          0.3,
        );
      },
    );
  });
}
