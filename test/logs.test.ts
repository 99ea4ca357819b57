import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import type { Db } from '../src/db/database.js';
import { createApiKey, type IssuedKey } from '../src/keys/keys.service.js';
import { createLogger, lazyRequestLogger, REDACTED_PATHS } from '../src/logger.js';
import { resolveSecrets } from '../src/secrets.js';
import { basicAuth, lineSink, openStore, STORES, TEST_PII_KEYS, TEST_SECRET } from './helpers/app.js';

const PLANTED = {
  first_name: 'Zebulon',
  last_name: 'Quixwhistle',
  email: 'zebulon.quixwhistle@example.org',
  phone_number: '+12025550143',
  ssn: '078-05-1120',
  address: { line1: '742 Evergreen Terrace', city: 'Springfieldia', state: 'Oregonia', country: 'US', postal_code: '97475' },
  birth_date: { year: 1953, month: 4, day: 19 },
};
const NEEDLES = [
  'Zebulon',
  'Quixwhistle',
  'zebulon.quixwhistle',
  '2025550143',
  '078-05-1120',
  '078051120',
  'Evergreen',
  'Springfieldia',
  'Oregonia',
  '97475',
];

/** Query values, a path segment and an external id planted in URLs: none may reach a log line. */
const IN_URLS = {
  email: 'quorra.urlplanted@example.net',
  externalId: 'ext-Wobblethorpe-5521',
  unknownKey: 'nickname',
  unknownValue: 'Snarkleberry',
  path: 'Pathwhimsy',
};
const URL_NEEDLES = ['quorra.urlplanted', IN_URLS.externalId, IN_URLS.unknownValue, IN_URLS.path];

/** An app on a fresh store that logs at trace level into `lines`; `scenario` runs with it, then all is closed. */
async function withLoggingApp(
  store: (typeof STORES)[number],
  env: NodeJS.ProcessEnv,
  scenario: (app: FastifyInstance, db: Db) => Promise<void>,
): Promise<string[]> {
  const { lines, sink } = lineSink();
  const opened = await openStore(store);
  // Load shedding would answer 503 on a busy machine and change what is logged; it has its own tests.
  const config = loadConfig({ USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS, MAX_EVENT_LOOP_DELAY_MS: '0', ...env, ...opened.env });
  const app = await buildApp(config, { db: opened.db, secrets: resolveSecrets(config), logger: createLogger('trace', sink) });
  try {
    await scenario(app, opened.db);
  } finally {
    await app.close();
    await opened.drop();
  }
  return lines;
}

for (const store of STORES) {
  describe(`logs carry no personal data or credentials (${store})`, () => {
    it('a full scenario at trace level logs none of the planted values', async () => {
      let key!: IssuedKey;
      const lines = await withLoggingApp(store, { RATE_LIMIT_MAX: '6' }, async (app, db) => {
        key = await createApiKey(db, { name: 'logs' });
        const headers = { authorization: basicAuth(key), 'content-type': 'application/json' };
        const created = await app.inject({ method: 'POST', url: '/v2/users', headers, payload: PLANTED });
        assert.equal(created.statusCode, 200);
        const { id, user_token: token } = created.json();
        const steps = [
          { method: 'GET', url: `/v2/users/${id}` },
          { method: 'PATCH', url: `/v2/users/${id}`, payload: { ...PLANTED, email: `bad ${PLANTED.email}` } },
          { method: 'PATCH', url: `/v2/users/${id}`, payload: { first_name: PLANTED.first_name, ssn: 'x' } },
          { method: 'POST', url: '/v2/user-tokens/introspect', payload: { user_token: token } },
          { method: 'POST', url: '/v2/users', payload: `{"ssn": "${PLANTED.ssn}", broken` },
          { method: 'GET', url: '/v2/users?external_id=x' },
          { method: 'DELETE', url: `/v2/users/${id}` },
        ] as const;
        for (const step of steps) await app.inject({ ...step, headers });
        await app.inject({ method: 'GET', url: '/v2/users', headers: { authorization: 'Basic ' + Buffer.from(`${key.api_key_id}:wrong`).toString('base64') } });
      });
      const log = lines.join('');
      assert.ok(lines.length >= 10, 'the scenario should have logged its requests');
      const completed = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'request completed');
      assert.ok(completed.length >= 8, 'every request logs its completion');
      for (const entry of completed) assert.match(entry.reqId, /^[0-9a-f-]{36}$/, 'request logs carry the request id');
      assert.match(log, /"statusCode":429/, 'the throttled requests were logged too');
      for (const needle of [...NEEDLES, key.api_key_secret, basicAuth(key).slice(6)]) {
        assert.equal(log.includes(needle), false, `"${needle}" appears in the logs`);
      }
    });

    it('logs the method and route of a request, never its query, an unmatched path or a cursor', async () => {
      const cursors: string[] = [];
      const lines = await withLoggingApp(store, {}, async (app, db) => {
        const key = await createApiKey(db, { name: 'logs-urls' });
        const headers = { authorization: basicAuth(key) };
        const get = async (url: string, method: 'GET' | 'PUT' = 'GET', as = headers) => app.inject({ method, url, headers: as });
        for (let i = 0; i < 3; i++) {
          const created = await app.inject({ method: 'POST', url: '/v2/users', headers, payload: { external_id: IN_URLS.externalId } });
          assert.equal(created.statusCode, 200);
        }
        // A walk over a list filtered by the planted external id: the cursors carry that filter.
        const first = await get(`/v2/users?external_id=${IN_URLS.externalId}&limit=1`);
        assert.equal(first.statusCode, 200);
        const next = new URL(first.json().next);
        cursors.push(next.searchParams.get('cursor') ?? '');
        const second = await get(`${next.pathname}${next.search}`);
        assert.equal(second.statusCode, 200);
        assert.equal(second.json().results[0].external_id, IN_URLS.externalId);
        for (const link of [second.json().next, second.json().previous]) cursors.push(new URL(link).searchParams.get('cursor') ?? '');
        const wrong = { authorization: 'Basic ' + Buffer.from(`${key.api_key_id}:wrong`).toString('base64') };
        const expected = [
          [await get(`/v2/users?email=${encodeURIComponent(IN_URLS.email)}`), 200],
          [await get(`/v2/users?${IN_URLS.unknownKey}=${IN_URLS.unknownValue}&limit=1`), 200],
          [await get(`/v2/users/${IN_URLS.path}`), 404],
          [await get(`/v2/${IN_URLS.path}/profile?email=${IN_URLS.email}`), 404],
          [await get(`/v2/users?email=${IN_URLS.email}`, 'PUT'), 405],
          [await get(`/v2/users/%zz${IN_URLS.path}`), 404],
          [await get(`/v2/users/${IN_URLS.path.repeat(20)}`), 404],
          [await get(`/v2/users?external_id=${IN_URLS.externalId}`, 'GET', wrong), 401],
        ] as const;
        for (const [res, status] of expected) assert.equal(res.statusCode, status, res.body);
      });
      const log = lines.join('');
      for (const needle of [...URL_NEEDLES, ...cursors]) {
        assert.ok(needle.length >= 10);
        assert.equal(log.includes(needle), false, `"${needle}" appears in the logs`);
      }
      const entries = lines.map((line) => JSON.parse(line));
      const incoming = entries.filter((entry) => entry.msg === 'incoming request').map((entry) => entry.req);
      assert.equal(incoming.length, 13, 'every request logs its arrival');
      for (const req of incoming) {
        assert.deepEqual(Object.keys(req).sort(), ['host', 'method', 'remoteAddress', 'route'].sort(), JSON.stringify(req));
      }
      const routes = incoming.map((req) => `${req.method} ${req.route}`);
      assert.deepEqual(
        [...new Set(routes)].sort(),
        ['GET /v2/users', 'GET /v2/users/:id', 'GET null', 'POST /v2/users', 'PUT /v2/users'].sort(),
        'matched requests log their route pattern; unmatched ones no path at all',
      );
      const completed = entries.filter((entry) => entry.msg === 'request completed');
      // Fastify logs no completion for the two requests its router turns away (frameworkErrors: bad encoding, long id).
      assert.equal(completed.length, incoming.length - 2, 'requests log their completion');
      const arrived = new Set(entries.filter((entry) => entry.msg === 'incoming request').map((entry) => entry.reqId));
      for (const entry of completed) {
        assert.equal(typeof entry.res.statusCode, 'number');
        assert.equal(typeof entry.responseTime, 'number');
        assert.ok(arrived.has(entry.reqId), 'a completion carries the request id of its arrival');
      }
    });
  });
}

describe('logger redaction', () => {
  it('redacts personal fields and credentials wherever a log call passes them', () => {
    const { lines, sink } = lineSink();
    const logger = createLogger('info', sink);
    const req = { method: 'GET', url: `/v2/users?email=${PLANTED.email}`, headers: { authorization: 'Basic c2VjcmV0' } };
    logger.info({ user: PLANTED, key: { api_key_secret: 's3cr3t-key' }, req }, 'debugging a user');
    const entry = JSON.parse(lines[0] ?? '{}');
    for (const field of ['ssn', 'email', 'phone_number', 'first_name', 'last_name', 'address', 'birth_date']) {
      assert.equal(entry.user[field], '[REDACTED]', field);
    }
    assert.equal(entry.key.api_key_secret, '[REDACTED]');
    assert.deepEqual(entry.req, { method: 'GET', route: null }, 'a request is logged without its URL or headers');
    assert.ok(REDACTED_PATHS.length > 0);
  });
});

describe('request loggers', () => {
  const capture = (level: string) => {
    const { lines, sink } = lineSink();
    const parent = createLogger(level, sink);
    let children = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => {
      children++;
      return child(...args);
    }) as typeof parent.child;
    return { parent, lines, children: () => children };
  };

  it('bind the request id and redact, like a pino child', () => {
    const { parent, lines } = capture('info');
    const log = lazyRequestLogger(parent, { reqId: 'r-1' }, {});
    log.warn({ user: { ssn: '078-05-1120' } }, 'careful');
    const entry = JSON.parse(lines[0] ?? '{}');
    assert.equal(entry.reqId, 'r-1');
    assert.equal(entry.msg, 'careful');
    assert.equal(entry.level, 40);
    assert.equal(entry.user.ssn, '[REDACTED]');
    assert.equal(log.level, 'info');
  });

  it('make no pino child until something is logged at an enabled level', () => {
    const { parent, lines, children } = capture('warn');
    const log = lazyRequestLogger(parent, { reqId: 'r-2' }, {});
    log.info('not written');
    log.debug('not written either');
    assert.equal(children(), 0);
    assert.equal(lines.length, 0);
    log.error('written');
    log.warn('written too');
    assert.equal(children(), 1, 'one child, made once');
    assert.deepEqual(
      lines.map((line) => JSON.parse(line).reqId),
      ['r-2', 'r-2'],
    );
  });

  it('follow a level set on the request logger', () => {
    const { parent, lines } = capture('warn');
    const log = lazyRequestLogger(parent, { reqId: 'r-3' }, {});
    log.level = 'debug';
    log.debug('now written');
    assert.equal(JSON.parse(lines[0] ?? '{}').msg, 'now written');
    assert.equal(parent.level, 'warn', 'the parent keeps its level');
  });
});

describe('errors in logs', () => {
  it("log an error's type, code, message and stack, never a driver's detail with the values of a key", () => {
    const { lines, sink } = lineSink();
    const logger = createLogger('info', sink);
    const error = Object.assign(new Error('duplicate key value violates unique constraint "users_email_key"'), {
      code: '23505',
      detail: 'Key (email)=(zebulon.quixwhistle@example.org) already exists.',
      parameters: ['078-05-1120'],
    });
    logger.error({ err: new Error('request failed', { cause: error }) }, 'request failed');
    const [line] = lines;
    assert.ok(line);
    const entry = JSON.parse(line);
    assert.equal(entry.err.message, 'request failed');
    assert.equal(entry.err.cause.code, '23505');
    assert.match(entry.err.cause.message, /users_email_key/);
    assert.doesNotMatch(line, /zebulon|078-05-1120/);
  });
});
