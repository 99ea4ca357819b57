import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createLogger } from '../src/logger.js';
import { createTestApi, createUser, lineSink, STORES, type TestApi } from './helpers/app.js';
import { cleanUpProcesses, freePort } from './helpers/process.js';
import { startRedis, type TestRedis } from './helpers/redis.js';

const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

async function redisReachable(): Promise<boolean> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null });
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}
const withRedis = process.env.CI === 'true' || (await redisReachable());
if (!withRedis) console.log(`# Redis not reachable at ${REDIS_URL}: skipping the shared rate-limit test`);

for (const store of STORES) {
  describe(`rate limits per API key (${store})`, () => {
    let api: TestApi;
    before(async () => {
      api = await createTestApi(store, { RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000' });
    });
    after(() => api.close());

    it('answers 429 with the DRF message and Retry-After once a key spends its budget; other keys are unaffected', async () => {
      const statuses: number[] = [];
      let throttled;
      for (let i = 0; i < 7; i++) {
        const res = await api.request({ method: 'GET', url: '/v2/users' });
        statuses.push(res.status);
        if (res.status === 429) throttled = res;
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
      assert.ok(throttled);
      assert.match(throttled.json.detail, /^Request was throttled\. Expected available in \d+ seconds\.$/);
      const seconds = Number(throttled.headers['retry-after']);
      assert.ok(seconds >= 1 && seconds <= 60, String(throttled.headers['retry-after']));
      const other = await api.newTenant('fresh-budget');
      assert.equal((await api.request({ method: 'GET', url: '/v2/users', as: other })).status, 200);
    });

    it('a throttled create stores nothing', async () => {
      const key = await api.newTenant('throttled-create');
      for (let i = 0; i < 5; i++) await createUser(api, {}, key);
      const res = await api.request({ method: 'POST', url: '/v2/users', payload: {}, as: key });
      assert.equal(res.status, 429);
      const rows = await api.db.selectFrom('users').select('id').where('client_id', '=', key.client_id).execute();
      assert.equal(rows.length, 5);
    });

    it('every authenticated request spends budget before its body is read: invalid, oversized and unreadable bodies too', async () => {
      const key = await api.newTenant('bad-bodies');
      const json = { 'content-type': 'application/json' };
      // Failed authentication never spends the key's budget, not even with the key's own id.
      const strangers = [
        await api.request({ method: 'POST', url: '/v2/users', payload: '{"broken', headers: json, as: { ...key, api_key_secret: 'wrong' } }),
        await api.request({ method: 'GET', url: '/v2/users', as: { ...key, api_key_secret: 'wrong' } }),
        await api.request({ method: 'POST', url: '/v2/users', payload: '{"broken', headers: json, as: null }),
      ];
      assert.deepEqual(strangers.map((res) => res.status), [401, 401, 401]);
      const spent = [
        await api.request({ method: 'POST', url: '/v2/users', payload: '{"broken', headers: json, as: key }),
        // 250 KB, within BODY_LIMIT, and invalid (first_name is at most 150 characters).
        await api.request({ method: 'POST', url: '/v2/users', payload: { first_name: 'x'.repeat(250_000) }, as: key }),
        await api.request({ method: 'POST', url: '/v2/users', payload: { email: 'x'.repeat(300_000) }, as: key }),
        await api.request({ method: 'POST', url: '/v2/users', payload: 'x', headers: { 'content-type': 'text/plain' }, as: key }),
        await api.request({ method: 'PATCH', url: `/v2/users/${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)}`, payload: { ssn: 'x' }, as: key }),
      ];
      assert.deepEqual(spent.map((res) => res.status), [400, 400, 413, 415, 400]);
      const throttled = await api.request({ method: 'GET', url: '/v2/users', as: key });
      assert.equal(throttled.status, 429, throttled.body);
      assert.match(throttled.json.detail, /^Request was throttled\. Expected available in \d+ seconds\.$/);
      const tooLarge = await api.request({ method: 'POST', url: '/v2/users', payload: { email: 'x'.repeat(300_000) }, as: key });
      assert.equal(tooLarge.status, 429, 'a spent budget is checked before the body too');
    });
  });
}

describe('rate limits shared through Redis', { skip: !withRedis }, () => {
  it('two instances with REDIS_URL enforce one budget per key', async () => {
    const env = { RATE_LIMIT_MAX: '6', RATE_LIMIT_WINDOW_MS: '60000', REDIS_URL };
    const a = await createTestApi('sqlite', env);
    // The second instance serves the same tenant: give it the same key by sharing the store's key row.
    const b = await createTestApi('sqlite', env);
    try {
      await b.db.insertInto('clients').values({ id: a.tenant.client_id, name: 'shared', created_at: new Date().toISOString() }).execute();
      const keyRow = await a.db.selectFrom('api_keys').selectAll().where('id', '=', a.tenant.api_key_id).executeTakeFirstOrThrow();
      await b.db.insertInto('api_keys').values(keyRow).execute();
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const instance = i % 2 === 0 ? a : b;
        statuses.push((await instance.request({ method: 'GET', url: '/v2/users', as: a.tenant })).status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

/**
 * The longest a request may wait on a stalled or absent outside service (set to time out in a few hundred ms):
 * generous against a loaded machine, yet far below what a hung one cost before (REQUEST_TIMEOUT_MS and more).
 */
const BOUND_MS = 3000;

/** What `work` resolves to, or a failure once `withinMs` have passed without it. */
async function answeredWithin<T>(withinMs: number, work: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${withinMs} ms`)), withinMs);
  });
  try {
    return await Promise.race([work(), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the service said about its Redis, in order: "away" when it stopped counting, "back" when it started again. */
function redisTransitions(lines: string[]): string[] {
  return lines
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.level === 40 && /Redis/.test(entry.msg))
    .map((entry) => (/unavailable/.test(entry.msg) ? 'away' : 'back'));
}

/** Requests until one is throttled: proof that counting works again. Fails after `withinMs`. */
async function untilThrottled(api: TestApi, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if ((await api.request({ method: 'GET', url: '/v2/users' })).status === 429) return;
    await sleep(100);
  }
  assert.fail(`no request was throttled within ${withinMs} ms: counting did not resume`);
}

for (const store of STORES) {
  describe(`rate limits fail open, within REDIS_TIMEOUT_MS, when Redis stalls or is gone (${store})`, () => {
    after(cleanUpProcesses);

    it('a paused Redis (SIGSTOP) costs one request at most REDIS_TIMEOUT_MS, the next ones nothing; counting resumes on SIGCONT', async () => {
      const timeoutMs = 300;
      const redis: TestRedis = await startRedis();
      const { lines, sink } = lineSink();
      const api = await createTestApi(
        store,
        { RATE_LIMIT_MAX: '3', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: String(timeoutMs) },
        { logger: createLogger('warn', sink) },
      );
      try {
        assert.equal((await api.request({ method: 'GET', url: '/v2/users' })).status, 200);
        redis.pause();
        const started = performance.now();
        for (let i = 0; i < 12; i++) {
          const res = await answeredWithin(BOUND_MS, () => api.request({ method: 'GET', url: '/v2/users' }));
          assert.equal(res.status, 200, 'uncounted, not refused');
        }
        const stalledMs = performance.now() - started;
        // One wait of REDIS_TIMEOUT_MS finds the stall; paid by every request, these would take 12 of them.
        assert.ok(stalledMs < 8 * timeoutMs, `12 requests took ${Math.round(stalledMs)} ms against a paused Redis`);
        assert.deepEqual(redisTransitions(lines), ['away'], 'one warning, not one per request or reconnection attempt');
        redis.resume();
        await untilThrottled(api, 15_000);
        assert.deepEqual(redisTransitions(lines), ['away', 'back']);
      } finally {
        redis.resume();
        await api.close();
        await redis.stop();
      }
    });

    it('shutting down does not wait on a paused Redis', async () => {
      const redis = await startRedis();
      const api = await createTestApi(store, { RATE_LIMIT_MAX: '3', REDIS_URL: redis.url, REDIS_TIMEOUT_MS: '300' });
      try {
        assert.equal((await api.request({ method: 'GET', url: '/v2/users' })).status, 200);
        redis.pause();
        await answeredWithin(BOUND_MS, () => api.close());
      } finally {
        redis.resume();
        await redis.stop();
      }
    });

    it('a Redis that refuses connections costs a request nothing; counting starts when it comes up', async () => {
      const timeoutMs = 2500;
      const port = await freePort();
      const { lines, sink } = lineSink();
      const api = await createTestApi(
        store,
        { RATE_LIMIT_MAX: '3', REDIS_URL: `redis://127.0.0.1:${port}`, REDIS_TIMEOUT_MS: String(timeoutMs) },
        { logger: createLogger('warn', sink) },
      );
      let redis: TestRedis | undefined;
      try {
        const started = performance.now();
        for (let i = 0; i < 10; i++) {
          const res = await answeredWithin(BOUND_MS, () => api.request({ method: 'GET', url: '/v2/users' }));
          assert.equal(res.status, 200, 'uncounted, not refused');
        }
        const refusedMs = performance.now() - started;
        assert.ok(refusedMs < timeoutMs, `10 requests took ${Math.round(refusedMs)} ms with Redis refusing connections: some waited for it`);
        assert.deepEqual(redisTransitions(lines), ['away'], 'one warning, not one per request or reconnection attempt');
        redis = await startRedis(port);
        await untilThrottled(api, 15_000);
        assert.deepEqual(redisTransitions(lines), ['away', 'back']);
      } finally {
        await api.close();
        await redis?.stop();
      }
    });
  });
}

describe('connection and time limits', () => {
  let api: TestApi;
  let port: number;
  before(async () => {
    api = await createTestApi('sqlite', { HEADERS_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '2000', MAX_CONNECTIONS: '3' });
    await api.app.listen({ port: 0, host: '127.0.0.1' });
    port = (api.app.server.address() as { port: number }).port;
  });
  after(() => api.close());

  /** Opens a socket, writes `chunks` spaced by `gapMs`, and resolves with what came back when it closed. */
  function dribble(chunks: string[], gapMs: number): Promise<{ data: string; closedAfterMs: number }> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const socket = connect(port, '127.0.0.1');
      let data = '';
      let i = 0;
      const timer = setInterval(() => {
        if (i < chunks.length && !socket.destroyed) socket.write(chunks[i++] ?? '');
      }, gapMs);
      socket.on('data', (d) => (data += d.toString()));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ data, closedAfterMs: Date.now() - started });
      });
      setTimeout(() => {
        clearInterval(timer);
        socket.destroy();
        reject(new Error('the server never closed the slow connection'));
      }, 15_000).unref();
    });
  }

  it('cuts off a client that dribbles its headers', async () => {
    const headers = ['GET /healthz HTTP/1.1\r\n', 'Host: x\r\n', ...Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: y\r\n`)];
    const { data, closedAfterMs } = await dribble(headers, 250);
    assert.ok(closedAfterMs < 5000, `closed after ${closedAfterMs} ms`);
    assert.match(data, /^HTTP\/1\.1 408|^$/);
  });

  it('cuts off a client that dribbles its body', async () => {
    const start = 'POST /v2/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{';
    const { closedAfterMs } = await dribble([start, ...Array.from({ length: 60 }, () => ' ')], 200);
    assert.ok(closedAfterMs < 6000, `closed after ${closedAfterMs} ms`);
  });

  it('caps concurrent connections', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<ReturnType<typeof connect>>((resolve) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
      })),
    );
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.status,
        () => 'refused',
      );
      assert.equal(res, 'refused');
    } finally {
      for (const s of sockets) s.destroy();
    }
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  });
});

/** Saturates the event loop for over a second (60 ms of work between yields), as a flood of requests would. */
async function saturateEventLoop(): Promise<void> {
  const end = Date.now() + 1200;
  while (Date.now() < end) {
    const busy = Date.now() + 60;
    while (Date.now() < busy);
    await new Promise((r) => setImmediate(r));
  }
}

for (const store of STORES) {
  describe(`load shedding (${store})`, () => {
    it('answers 503 in the documented shape while the event loop is saturated', async () => {
      const api = await createTestApi(store, { MAX_EVENT_LOOP_DELAY_MS: '20' });
      try {
        const healthy = await api.request({ method: 'GET', url: '/v2/users' });
        assert.equal(healthy.status, 200);
        await saturateEventLoop();
        const res = await api.request({ method: 'GET', url: '/v2/users' });
        assert.equal(res.status, 503);
        assert.deepEqual(res.json, { detail: 'Service temporarily unavailable, try again later.' });
      } finally {
        await api.close();
      }
    });

    it('never sheds the liveness probe: /healthz answers 200 while /readyz and the API answer 503', async () => {
      const api = await createTestApi(store, { MAX_EVENT_LOOP_DELAY_MS: '20' });
      try {
        await saturateEventLoop();
        // Together, so that all three meet the same pressure reading.
        const [live, ready, users] = await Promise.all(
          ['/healthz', '/readyz', '/v2/users'].map((url) => api.request({ method: 'GET', url, as: url === '/v2/users' ? undefined : null })),
        );
        assert.equal(ready?.status, 503, 'a saturated instance is not ready: the balancer may send its traffic elsewhere');
        assert.equal(users?.status, 503);
        assert.equal(live?.status, 200, `a busy instance is alive: ${live?.body}`);
        assert.deepEqual(live?.json, { status: 'ok' });
      } finally {
        await api.close();
      }
    });
  });
}

describe('security headers', () => {
  it('every API response carries them; errors too', async () => {
    const api = await createTestApi('sqlite');
    try {
      for (const res of [
        await api.request({ method: 'GET', url: '/v2/users' }),
        await api.request({ method: 'GET', url: '/v2/users', as: null }),
        await api.request({ method: 'GET', url: '/nope' }),
        await api.request({ method: 'POST', url: '/v2/users', payload: '{"broken', headers: { 'content-type': 'application/json' } }),
        await api.request({ method: 'POST', url: '/v2/users', payload: 'x', headers: { 'content-type': 'text/plain' } }),
        await api.request({ method: 'GET', url: '/v2/users?limit=x' }),
        // Not valid percent-encoding: answered by Fastify's frameworkErrors, outside the hooks.
        await api.request({ method: 'GET', url: '/v2/users/%E0%A4%A' }),
        await api.request({
          method: 'POST',
          url: '/v2/users',
          payload: JSON.stringify({ first_name: 'x'.repeat(2 * 1024 * 1024) }),
          headers: { 'content-type': 'application/json' },
        }),
        await api.request({ method: 'GET', url: '/docsx' }),
      ]) {
        assert.ok(res.status >= 200 && res.status < 500, `status ${res.status}`);
        assert.equal(res.headers['x-content-type-options'], 'nosniff');
        assert.equal(res.headers['cache-control'], 'no-store');
        assert.equal(res.headers['x-frame-options'], 'DENY');
        assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
        assert.ok(res.headers['x-request-id']);
      }
      const docs = await api.request({ method: 'GET', url: '/docs/', as: null });
      assert.equal(docs.headers['x-content-type-options'], 'nosniff');
      assert.equal(docs.headers['content-security-policy'], undefined, 'the docs page loads its scripts and styles');
      const statuses = await Promise.all(['/v2/users/%E0%A4%A', '/docsx'].map(async (url) => (await api.request({ method: 'GET', url })).status));
      assert.deepEqual(statuses, [404, 404]);
    } finally {
      await api.close();
    }
  });
});
