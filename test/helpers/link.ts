// The Link side as a client drives it: users with their tokens, Bearer requests, connection attempts and reports.
import assert from 'node:assert/strict';
import type { InjectOptions } from 'fastify';
import type { Db } from '../../src/db/database.js';
import type { IssuedKey } from '../../src/keys/keys.service.js';
import { UserTokens } from '../../src/tokens/tokens.js';
import { TEST_SECRET, type Response, type TestApi } from './app.js';

/** A user and the token POST /v2/users answered with. */
export interface LinkUser {
  id: string;
  token: string;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- accounts are read as plain JSON */
export type AccountJson = any;

/** The account object's keys, in order, and its connection's. */
export const ACCOUNT_KEYS = ['id', 'user', 'employers', 'item', 'source', 'created_at', 'updated_at', 'scanned_at', 'connection'];
export const CONNECTION_KEYS = ['status', 'error_code', 'error_message', 'updated_at'];
/** The API's timestamp form (as users'). */
export const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
export const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A well-formed UUIDv7 that names nothing. */
export const MISSING_ID = '0190a4e2-0000-7000-8000-000000000000';

/** Mints user tokens as the app does (its secret and issuer), or as another service would. */
export function userTokens({ secret = TEST_SECRET, issuer = 'users-api' } = {}): UserTokens {
  return new UserTokens(new TextEncoder().encode(secret), issuer);
}

export async function createLinkUser(api: TestApi, body: object = {}, as?: IssuedKey): Promise<LinkUser> {
  const res = await api.request({ method: 'POST', url: '/v2/users', payload: body, as });
  assert.equal(res.status, 200, res.body);
  return { id: res.json.id, token: res.json.user_token };
}

/** A request to the Link side with `token` as the Bearer credential (and no API key). */
export function linkRequest(api: TestApi, token: string, options: InjectOptions): Promise<Response> {
  return api.request({ ...options, as: null, headers: { authorization: `Bearer ${token}`, ...options.headers } });
}

/** POST /v2/link/accounts: a connection attempt; asserts it is answered 200 or 201. */
export async function attempt(api: TestApi, user: LinkUser, body: object): Promise<Response> {
  const res = await linkRequest(api, user.token, { method: 'POST', url: '/v2/link/accounts', payload: body });
  assert.ok(res.status === 200 || res.status === 201, `POST /v2/link/accounts ${JSON.stringify(body)}: ${res.status} ${res.body}`);
  return res;
}

/** PATCH /v2/link/accounts/{id}: the connector's report. */
export function report(api: TestApi, user: LinkUser, accountId: string, body: object): Promise<Response> {
  return linkRequest(api, user.token, { method: 'PATCH', url: `/v2/link/accounts/${accountId}`, payload: body });
}

/** Starts (or restarts) an attempt for `item` and reports it connected; answers the account. */
export async function connect(api: TestApi, user: LinkUser, item: string, employers?: string[]): Promise<AccountJson> {
  const started = await attempt(api, user, { item });
  const res = await report(api, user, started.json.id, { connection: { status: 'connected' }, ...(employers ? { employers } : {}) });
  assert.equal(res.status, 200, res.body);
  return res.json;
}

/** Starts (or restarts) an attempt for `item` and reports it failed with `code`; answers the account. */
export async function fail(api: TestApi, user: LinkUser, item: string, code = 'invalid_credentials'): Promise<AccountJson> {
  const started = await attempt(api, user, { item });
  const res = await report(api, user, started.json.id, { connection: { status: 'error', error_code: code } });
  assert.equal(res.status, 200, res.body);
  return res.json;
}

/** The user as the API-key side reads it (its arrays and ETag). */
export async function getUser(api: TestApi, id: string, as?: IssuedKey): Promise<Response> {
  const res = await api.request({ method: 'GET', url: `/v2/users/${id}`, as });
  assert.equal(res.status, 200, res.body);
  return res;
}

/** {items_connected, employers_connected} of a user, read with the API key. */
export async function arraysOf(api: TestApi, id: string, as?: IssuedKey): Promise<{ items: string[]; employers: string[] }> {
  const { json } = await getUser(api, id, as);
  return { items: json.items_connected, employers: json.employers_connected };
}

/** The stored account rows (every client, or one user's), straight from the database. */
export async function accountRows(db: Db, userId?: string) {
  let query = db.selectFrom('accounts').selectAll();
  if (userId !== undefined) query = query.where('user_id', '=', userId);
  return query.orderBy('id').execute();
}

export const idsOf = (res: Response): string[] => res.json.results.map((a: { id: string }) => a.id);
