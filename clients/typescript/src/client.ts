// The typed client: openapi-fetch over the generated paths, with DRF errors, Idempotency-Key, If-Match and paging.
import createClient from 'openapi-fetch';
import { errorBody, UsersApiError } from './errors.js';
import { PageWalk, type Page } from './paging.js';
import type { components, operations, paths } from './schema.js';

type Schemas = components['schemas'];
type JsonOf<T> = T extends { content: { 'application/json': infer Body } } ? Body : never;
type RequestBody<Op extends keyof operations> = JsonOf<NonNullable<operations[Op]['requestBody']>>;
/** A list's query without its cursor: the walk follows the cursors itself. */
type ListQuery<Op extends keyof operations> = Omit<NonNullable<operations[Op]['parameters']['query']>, 'cursor'>;
type Answer<Op extends keyof operations, Status extends keyof operations[Op]['responses']> = JsonOf<operations[Op]['responses'][Status]>;

export type User = Schemas['User'];
export type Account = Schemas['Account'];
export type Webhook = Schemas['Webhook'];
export type Delivery = Schemas['Delivery'];
export type ApiKey = Schemas['ApiKey'];
export type UserInput = RequestBody<'createUser'>;
export type CreatedUser = Answer<'createUser', 200>;
export type UserToken = Answer<'createUserToken', 200>;
export type Introspection = Answer<'introspectUserToken', 200>;
export type WebhookInput = RequestBody<'createWebhook'>;
export type LinkUser = Answer<'retrieveLinkUser', 200>;
export type AccountAttempt = RequestBody<'createLinkAccount'>;
export type ConnectionReport = RequestBody<'reportLinkAccount'>;
export type ListUsersQuery = ListQuery<'listUsers'>;
export type ListAccountsQuery = ListQuery<'listAccounts'>;
export type ListLinkAccountsQuery = ListQuery<'listLinkAccounts'>;

export interface ConnectionOptions {
  /** The service's origin, e.g. `https://users.example.com` (paths start with /v2). */
  baseUrl: string;
  /** Another fetch (a proxy agent, a test's fault injection). */
  fetch?: (request: Request) => Promise<Response>;
  /**
   * How many times a create sent with an Idempotency-Key is sent again, with the same key, when its answer was lost
   * (a network error) or was 502, 503 or 504. Default 2; creates without a key are never retried.
   */
  retries?: number;
  /** The first retry's delay; each next one is twice as long. Default 250 ms. */
  retryDelayMs?: number;
}

export interface ApiKeyOptions extends ConnectionOptions {
  apiKeyId: string;
  apiKeySecret: string;
}

export interface LinkOptions extends ConnectionOptions {
  /** The user token that POST /v2/users or POST /v2/user-tokens answered. */
  userToken: string;
}

/** A create's Idempotency-Key: a random UUID with `idempotent: true`, or the caller's own `idempotencyKey`. */
export interface CreateOptions {
  idempotent?: boolean;
  idempotencyKey?: string;
}

/** `If-Match`: an ETag (`"v3"`), or a user this client read or updated, whose ETag it kept. */
export interface PreconditionOptions {
  ifMatch?: User | string;
}

const etags = new WeakMap<object, string>();

/** The ETag of a user this client read or updated (the version If-Match names); undefined for any other object. */
export const etagOf = (user: User): string | undefined => etags.get(user);

function ifMatchHeader({ ifMatch }: PreconditionOptions): { 'if-match'?: string } {
  if (ifMatch === undefined) return {};
  if (typeof ifMatch === 'string') return { 'if-match': ifMatch };
  const etag = etags.get(ifMatch);
  if (etag === undefined) throw new TypeError('ifMatch: this user object was not read through this client, so its ETag is unknown; pass the ETag');
  return { 'if-match': etag };
}

function idempotencyHeader({ idempotent, idempotencyKey }: CreateOptions = {}): { 'idempotency-key'?: string } {
  const key = idempotencyKey ?? (idempotent ? crypto.randomUUID() : undefined);
  return key === undefined ? {} : { 'idempotency-key': key };
}

const RETRIED_STATUSES = new Set([502, 503, 504]);

interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** openapi-fetch with one authorization, and the one place answers become data or a UsersApiError. */
function connect(options: ConnectionOptions, authorization: string) {
  const raw = createClient<paths>({ baseUrl: options.baseUrl, headers: { authorization }, ...(options.fetch ? { fetch: options.fetch } : {}) });
  const retries = options.retries ?? 2;
  const retryDelayMs = options.retryDelayMs ?? 250;
  const pause = (attempt: number) => new Promise((resolve) => setTimeout(resolve, retryDelayMs * 2 ** attempt));

  /** The answer's data; a keyed request (`retry`) is sent again while its answer is lost or the service is unavailable. */
  async function send<T>(call: () => Promise<Outcome<T>>, retry = false): Promise<{ data: T; response: Response }> {
    for (let attempt = 0; ; attempt++) {
      const again = retry && attempt < retries;
      let outcome: Outcome<T>;
      try {
        outcome = await call();
      } catch (error) {
        if (!again) throw error;
        await pause(attempt);
        continue;
      }
      const { data, error, response } = outcome;
      if (response.ok) return { data: data as T, response };
      if (again && RETRIED_STATUSES.has(response.status)) {
        await pause(attempt);
        continue;
      }
      throw new UsersApiError(response.status, errorBody(error, response), response);
    }
  }

  const data = async <T>(call: () => Promise<Outcome<T>>, retry = false): Promise<T> => (await send(call, retry)).data;

  /** A user answer with its ETag kept for If-Match. */
  const versioned = async (call: () => Promise<Outcome<User>>): Promise<User> => {
    const { data: user, response } = await send(call);
    const etag = response.headers.get('etag');
    if (etag !== null) etags.set(user, etag);
    return user;
  };

  /** The first page with `query`, the next ones with their cursor alone (it carries the query). */
  const walk = <T, Q extends object>(query: Q, page: (query: Q | { cursor: string }) => Promise<Outcome<Page<T>>>) =>
    new PageWalk<T>((cursor) => data(() => page(cursor === undefined ? query : { cursor })));

  return { raw, data, versioned, walk };
}

/** The API-key side (your backend): users, user tokens, accounts, webhooks and API keys. */
export function createUsersApiClient(options: ApiKeyOptions) {
  const { apiKeyId, apiKeySecret } = options;
  const { raw, data, versioned, walk } = connect(options, `Basic ${btoa(`${apiKeyId}:${apiKeySecret}`)}`);
  const id = (value: string) => ({ path: { id: value } });
  return {
    /** openapi-fetch itself, for what the helpers leave out (e.g. `raw.GET('/v2/users/export.csv', { parseAs: 'text' })`). */
    raw,
    users: {
      create: (body: UserInput = {}, options?: CreateOptions): Promise<CreatedUser> => {
        const header = idempotencyHeader(options);
        return data(() => raw.POST('/v2/users', { params: { header }, body }), 'idempotency-key' in header);
      },
      get: (userId: string): Promise<User> => versioned(() => raw.GET('/v2/users/{id}', { params: id(userId) })),
      list: (query: ListUsersQuery = {}): PageWalk<User> =>
        walk(query, (query) => raw.GET('/v2/users', { params: { query } })),
      /** Every user with this exact `external_id` (nothing makes it unique; usually one). */
      findByExternalId: (externalId: string): Promise<User[]> =>
        walk({ external_id: externalId, limit: 200 }, (query) => raw.GET('/v2/users', { params: { query } })).toArray(),
      /** A JSON merge patch; with `ifMatch`, applied only to that version (else a 412 UsersApiError). */
      update: (userId: string, patch: UserInput, options: PreconditionOptions = {}): Promise<User> =>
        versioned(() => raw.PATCH('/v2/users/{id}', { params: { ...id(userId), header: ifMatchHeader(options) }, body: patch })),
      delete: async (userId: string, options: PreconditionOptions = {}): Promise<void> => {
        await data(() => raw.DELETE('/v2/users/{id}', { params: { ...id(userId), header: ifMatchHeader(options) } }));
      },
    },
    userTokens: {
      create: (userId: string, options?: CreateOptions): Promise<UserToken> => {
        const header = idempotencyHeader(options);
        return data(() => raw.POST('/v2/user-tokens', { params: { header }, body: { user: userId } }), 'idempotency-key' in header);
      },
      introspect: (userToken: string): Promise<Introspection> => data(() => raw.POST('/v2/user-tokens/introspect', { body: { user_token: userToken } })),
    },
    accounts: {
      list: (query: ListAccountsQuery = {}): PageWalk<Account> =>
        walk(query, (query) => raw.GET('/v2/accounts', { params: { query } })),
      get: (accountId: string): Promise<Account> => data(() => raw.GET('/v2/accounts/{id}', { params: id(accountId) })),
      delete: async (accountId: string): Promise<void> => {
        await data(() => raw.DELETE('/v2/accounts/{id}', { params: id(accountId) }));
      },
    },
    webhooks: {
      create: (body: WebhookInput): Promise<Webhook> => data(() => raw.POST('/v2/webhooks', { body })),
      list: (query: ListQuery<'listWebhooks'> = {}): PageWalk<Webhook> =>
        walk(query, (query) => raw.GET('/v2/webhooks', { params: { query } })),
      get: (webhookId: string): Promise<Webhook> => data(() => raw.GET('/v2/webhooks/{id}', { params: id(webhookId) })),
      delete: async (webhookId: string): Promise<void> => {
        await data(() => raw.DELETE('/v2/webhooks/{id}', { params: id(webhookId) }));
      },
      deliveries: (webhookId: string, query: ListQuery<'listWebhookDeliveries'> = {}): PageWalk<Delivery> =>
        walk(query, (query) => raw.GET('/v2/webhooks/{id}/deliveries', { params: { ...id(webhookId), query } })),
      /** Due now with a fresh budget of attempts (a delivered one is a 409 UsersApiError). */
      retry: (webhookId: string, deliveryId: string): Promise<Delivery> =>
        data(() => raw.POST('/v2/webhooks/{id}/deliveries/{delivery}/retry', { params: { path: { id: webhookId, delivery: deliveryId } } })),
    },
    apiKeys: {
      list: (query: ListQuery<'listApiKeys'> = {}): PageWalk<ApiKey> =>
        walk(query, (query) => raw.GET('/v2/api-keys', { params: { query } })),
    },
  };
}

/** The Link side (a front end with its user's token): the pre-fill, and the user's connection attempts. */
export function createLinkClient(options: LinkOptions) {
  const { raw, data, walk } = connect(options, `Bearer ${options.userToken}`);
  return {
    raw,
    user: (): Promise<LinkUser> => data(() => raw.GET('/v2/link/user')),
    accounts: {
      /** Starts connecting an item: a new account in `connecting`, or the user's account for it. */
      create: (body: AccountAttempt, options?: CreateOptions): Promise<Account> => {
        const header = idempotencyHeader(options);
        return data(() => raw.POST('/v2/link/accounts', { params: { header }, body }), 'idempotency-key' in header);
      },
      list: (query: ListLinkAccountsQuery = {}): PageWalk<Account> =>
        walk(query, (query) => raw.GET('/v2/link/accounts', { params: { query } })),
      /** The connector's outcome: `{ connection: { status: 'connected' } }` or an error code. */
      report: (accountId: string, body: ConnectionReport): Promise<Account> =>
        data(() => raw.PATCH('/v2/link/accounts/{id}', { params: { path: { id: accountId } }, body })),
    },
  };
}

export type UsersApiClient = ReturnType<typeof createUsersApiClient>;
export type LinkClient = ReturnType<typeof createLinkClient>;
