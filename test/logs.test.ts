import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createApiKey } from '../src/keys/keys.service.js';
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

for (const store of STORES) {
  describe(`logs carry no personal data or credentials (${store})`, () => {
    it('a full scenario at trace level logs none of the planted values', async () => {
      const { lines, sink } = lineSink();
      const opened = await openStore(store);
      const config = loadConfig({ USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS: TEST_PII_KEYS, RATE_LIMIT_MAX: '6', ...opened.env });
      const app = await buildApp(config, { db: opened.db, secrets: resolveSecrets(config), logger: createLogger('trace', sink) });
      const key = await createApiKey(opened.db, { name: 'logs' });
      const headers = { authorization: basicAuth(key), 'content-type': 'application/json' };
      try {
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
      } finally {
        await app.close();
        await opened.drop();
      }
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
  });
}

describe('logger redaction', () => {
  it('redacts personal fields and credentials wherever a log call passes them', () => {
    const { lines, sink } = lineSink();
    const logger = createLogger('info', sink);
    logger.info({ user: PLANTED, req: { headers: { authorization: 'Basic c2VjcmV0' } } }, 'debugging a user');
    const entry = JSON.parse(lines[0] ?? '{}');
    for (const field of ['ssn', 'email', 'phone_number', 'first_name', 'last_name', 'address', 'birth_date']) {
      assert.equal(entry.user[field], '[REDACTED]', field);
    }
    assert.equal(entry.req.headers.authorization, '[REDACTED]');
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
