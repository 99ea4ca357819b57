// Operations: liveness and readiness, graceful shutdown of a real server process, one-line startup errors.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { IssuedKey } from '../src/keys/keys.service.js';
import { basicAuth, createTestApi, STORES, TEST_DATABASE_URL, TEST_SECRET, type TestApi } from './helpers/app.js';
import {
  assertOneLineError,
  cleanUpProcesses,
  cli,
  COMMAND_TIMEOUT_MS,
  exitOf,
  makeTempDir,
  ROOT,
  SERVE_TIMEOUT_MS,
  sqliteStoreWithKey,
  startServer,
  STOP_TIMEOUT_MS,
  stopServer,
  waitFor,
  type Result,
  type ServerProcess,
} from './helpers/process.js';

/** Field-encryption keys, required alongside USER_TOKEN_SECRET on PostgreSQL (ignored where not known). */
const PII_KEYS = `ops1:${Buffer.alloc(32, 7).toString('base64')}`;

const sockets = new Set<Socket>();

/** As assertOneLineError, and the server never got as far as listening. */
function assertStartupError(result: Result, pattern: RegExp): void {
  assertOneLineError(result, pattern);
  assert.doesNotMatch(result.stdout, /Server listening/, 'the server must not have started');
}

/** A raw HTTP/1.1 connection, to hold a request half-sent. */
async function openSocket(port: number): Promise<{ socket: Socket; received: () => string; ended: Promise<void> }> {
  const socket = connect({ host: '127.0.0.1', port });
  sockets.add(socket);
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  return { socket, received: () => received, ended };
}

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses a complete HTTP/1.1 response with Content-Length, or returns undefined while incomplete. */
function parseResponse(raw: string): RawResponse | undefined {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const [statusLine = '', ...headerLines] = raw.slice(0, end).split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const body = raw.slice(end + 4);
  const length = Number(headers['content-length'] ?? NaN);
  if (!Number.isNaN(length) && Buffer.byteLength(body) < length) return undefined;
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/** How a brand-new connection fares: refused, or answered (with its status). */
async function probeNewConnection(base: string): Promise<{ refused: true } | { refused: false; status: number }> {
  try {
    const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(3_000) });
    await res.body?.cancel();
    return { refused: false, status: res.status };
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return { refused: true };
    throw error;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends the headers and half the body of a POST /v2/users, SIGTERMs the server, checks that a new connection is
 * refused (or answered 503) while the request is still open, then sends the rest and returns the answer.
 */
async function inFlightThroughShutdown(
  server: ServerProcess,
  key: IssuedKey,
  /** Sent once shutdown has begun, as an impatient operator or orchestrator would. */
  moreSignals: NodeJS.Signals[] = [],
): Promise<{ raw: Awaited<ReturnType<typeof openSocket>>; response: RawResponse }> {
  const body = JSON.stringify({ external_id: 'in-flight', first_name: 'Grace', last_name: 'Hopper' });
  const half = Math.floor(body.length / 2);
  const raw = await openSocket(server.port);
  raw.socket.write(
    [
      'POST /v2/users HTTP/1.1',
      `Host: 127.0.0.1:${server.port}`,
      `Authorization: ${basicAuth(key)}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      '',
    ].join('\r\n') + body.slice(0, half),
  );
  // The server has the request (its headers are parsed) before it is told to stop.
  await waitFor(() => /"msg":"incoming request"/.test(server.stdout()), 10_000, () => server.stdout(), server.child);

  server.child.kill('SIGTERM');
  await waitFor(() => /shutting down/.test(server.stdout()), 10_000, () => server.stdout(), server.child);
  for (const signal of moreSignals) server.child.kill(signal);
  await sleep(300);
  assert.equal(server.child.exitCode, null, 'the server waits for the in-flight request');

  const probe = await probeNewConnection(server.base);
  assert.ok(probe.refused || probe.status === 503, `a new connection was served during shutdown: ${JSON.stringify(probe)}`);
  assert.equal(raw.received(), '', 'nothing was answered on the in-flight connection yet');
  assert.equal(server.child.exitCode, null, 'still waiting for the in-flight request');

  raw.socket.write(body.slice(half));
  const response = await waitFor(() => parseResponse(raw.received()), 10_000, () => raw.received());
  return { raw, response };
}

after(() => {
  for (const socket of sockets) socket.destroy();
  cleanUpProcesses();
});

for (const store of STORES) {
  describe(`health endpoints on ${store}`, () => {
    let api: TestApi;
    let broken: TestApi;

    before(async () => {
      api = await createTestApi(store);
      broken = await createTestApi(store);
    });

    after(async () => {
      await api?.close();
      if (broken) {
        // Its database is destroyed by a test below: close only the app, then remove the store's data.
        await broken.app.close();
        const { database } = broken.config;
        if (database.kind === 'postgres' && database.schema) {
          const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
          await client.connect();
          try {
            await client.query(`drop schema if exists ${database.schema} cascade`);
          } finally {
            await client.end();
          }
        }
      }
    });

    it('GET /healthz and GET /readyz answer 200 {"status":"ok"} without credentials', async () => {
      for (const url of ['/healthz', '/readyz']) {
        const res = await api.request({ method: 'GET', url, as: null });
        assert.equal(res.status, 200, `${url}: ${res.body}`);
        assert.deepEqual(res.json, { status: 'ok' });
        assert.match(String(res.headers['content-type']), /^application\/json/);
      }
    });

    it('answer the same with credentials, and are not part of the API document', async () => {
      for (const url of ['/healthz', '/readyz']) {
        const res = await api.request({ method: 'GET', url });
        assert.equal(res.status, 200, `${url}: ${res.body}`);
        assert.deepEqual(res.json, { status: 'ok' });
      }
      const doc = await api.request({ method: 'GET', url: '/openapi.json', as: null });
      assert.equal(doc.status, 200);
      assert.equal(Object.hasOwn(doc.json.paths, '/healthz'), false);
      assert.equal(Object.hasOwn(doc.json.paths, '/readyz'), false);
    });

    it('with the database gone, /readyz answers 503 {"detail":"Database unreachable."} and /healthz still 200', async () => {
      const ready = await broken.request({ method: 'GET', url: '/readyz', as: null });
      assert.equal(ready.status, 200, 'ready before the database goes away');
      await broken.db.destroy();
      const notReady = await broken.request({ method: 'GET', url: '/readyz', as: null });
      assert.equal(notReady.status, 503, notReady.body);
      assert.deepEqual(notReady.json, { detail: 'Database unreachable.' });
      const alive = await broken.request({ method: 'GET', url: '/healthz', as: null });
      assert.equal(alive.status, 200, alive.body);
      assert.deepEqual(alive.json, { status: 'ok' });
    });
  });
}

describe('graceful shutdown of a server process (SQLite)', () => {
  it(
    'on SIGTERM stops accepting, finishes the in-flight request with 200, exits 0; the user is stored',
    { timeout: SERVE_TIMEOUT_MS * 2 + STOP_TIMEOUT_MS * 2 },
    async () => {
      const { path, key } = await sqliteStoreWithKey('ops');
      const env = { DATABASE_URL: path };
      const server = await startServer(env);
      let id: string;
      try {
        const { raw, response } = await inFlightThroughShutdown(server, key);
        assert.equal(response.status, 200, `in-flight request: ${raw.received()}`);
        const created = JSON.parse(response.body) as { id: string; user_token: string };
        assert.deepEqual(Object.keys(created).sort(), ['id', 'user_token']);
        id = created.id;

        // A client that has its answer and hangs up: nothing else holds the server.
        raw.socket.end();
        const exit = await exitOf(server);
        assert.deepEqual(exit, { code: 0, signal: null }, `stdout: ${server.stdout()}\nstderr: ${server.stderr()}`);
        assert.doesNotMatch(server.stdout(), /shutdown timed out/);
      } finally {
        if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
      }

      // The acknowledged write survived the shutdown.
      const again = await startServer(env);
      try {
        const res = await fetch(`${again.base}/v2/users/${id}`, {
          headers: { authorization: basicAuth(key) },
          signal: AbortSignal.timeout(10_000),
        });
        assert.equal(res.status, 200);
        const user = (await res.json()) as { id: string; external_id: string; first_name: string; last_name: string };
        assert.equal(user.id, id);
        assert.equal(user.external_id, 'in-flight');
        assert.equal(user.first_name, 'Grace');
        assert.equal(user.last_name, 'Hopper');
      } finally {
        const exit = await stopServer(again);
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${again.stderr()}`);
      }
    },
  );

  it(
    'further SIGTERM and SIGINT during shutdown do not cut the in-flight request short: it gets its 200, exit 0',
    { timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS * 2 },
    async () => {
      const { path, key } = await sqliteStoreWithKey('ops');
      const server = await startServer({ DATABASE_URL: path });
      try {
        const { raw, response } = await inFlightThroughShutdown(server, key, ['SIGTERM', 'SIGINT', 'SIGTERM']);
        assert.equal(response.status, 200, `in-flight request: ${raw.received()}`);
        raw.socket.end();
        assert.deepEqual(await exitOf(server), { code: 0, signal: null }, `stdout: ${server.stdout()}`);
        assert.match(server.stdout(), /"signal":"SIGINT".*already shutting down/);
      } finally {
        if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
      }
    },
  );

  it(
    'a keep-alive client that keeps its connection after the in-flight request does not hold up shutdown',
    {
      timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS * 2,
    },
    async () => {
      const { path, key } = await sqliteStoreWithKey('ops');
      const server = await startServer({ DATABASE_URL: path, SHUTDOWN_TIMEOUT_MS: '5000' });
      try {
        const { raw, response } = await inFlightThroughShutdown(server, key);
        assert.equal(response.status, 200, `in-flight request: ${raw.received()}`);
        const answered = Date.now();
        // The client keeps the connection, as a pooling client or load balancer does: the server must end it.
        const exit = await exitOf(server, 10_000);
        const took = Date.now() - answered;
        assert.deepEqual(exit, { code: 0, signal: null }, `exited after ${took} ms\nstdout: ${server.stdout()}`);
        assert.ok(took < 2_000, `exit took ${took} ms after the last response`);
        assert.equal(response.headers.connection, 'close', 'the last response during shutdown announces the close');
        await raw.ended;
      } finally {
        if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
      }
    },
  );

  it('an idle keep-alive connection does not hold up shutdown: SIGTERM exits 0 promptly', { timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS }, async () => {
    const { path } = await sqliteStoreWithKey('ops');
    // A long deadline: exiting 0 well before it proves the idle connection was closed, not waited out.
    const server = await startServer({ DATABASE_URL: path, SHUTDOWN_TIMEOUT_MS: '20000' });
    try {
      const raw = await openSocket(server.port);
      raw.socket.write(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: keep-alive\r\n\r\n`);
      const response = await waitFor(() => parseResponse(raw.received()), 10_000, () => raw.received());
      assert.equal(response.status, 200);
      assert.notEqual(response.headers.connection, 'close', 'the connection stays open');
      const started = Date.now();
      server.child.kill('SIGTERM');
      const exit = await exitOf(server, 10_000);
      assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr()}`);
      assert.ok(Date.now() - started < 5_000, `shutdown took ${Date.now() - started} ms`);
      await raw.ended;
    } finally {
      if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
    }
  });

  it('SIGINT shuts down the same way, exit 0', { timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS }, async () => {
    const { path } = await sqliteStoreWithKey('ops');
    const server = await startServer({ DATABASE_URL: path });
    try {
      server.child.kill('SIGINT');
      const exit = await exitOf(server);
      assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr()}`);
      assert.match(server.stdout(), /"signal":"SIGINT"/);
    } finally {
      if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
    }
  });

  it('a request that never finishes is abandoned after SHUTDOWN_TIMEOUT_MS with exit code 1', { timeout: SERVE_TIMEOUT_MS + STOP_TIMEOUT_MS }, async () => {
    const { path, key } = await sqliteStoreWithKey('ops');
    const server = await startServer({ DATABASE_URL: path, SHUTDOWN_TIMEOUT_MS: '1000' });
    try {
      const raw = await openSocket(server.port);
      raw.socket.write(
        `POST /v2/users HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nAuthorization: ${basicAuth(key)}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"first_name":',
      );
      await waitFor(() => /"msg":"incoming request"/.test(server.stdout()), 10_000, () => server.stdout(), server.child);
      const started = Date.now();
      server.child.kill('SIGTERM');
      const exit = await exitOf(server, 10_000);
      const took = Date.now() - started;
      assert.deepEqual(exit, { code: 1, signal: null }, `stdout: ${server.stdout()}\nstderr: ${server.stderr()}`);
      assert.ok(took >= 900, `exited after ${took} ms, before the deadline`);
      assert.match(server.stdout() + server.stderr(), /shutdown timed out/);
    } finally {
      if (server.child.exitCode === null) await stopServer(server).catch(() => undefined);
    }
  });
});

describe('startup errors: one line, no stack trace, non-zero exit', () => {
  it('an unreachable PostgreSQL server, without revealing the password', { timeout: COMMAND_TIMEOUT_MS }, async () => {
    const result = await cli(['serve'], {
      DATABASE_URL: 'postgres://someone:hunter2-not-shown@127.0.0.1:1/x',
      USER_TOKEN_SECRET: TEST_SECRET,
      PII_KEYS,
      PORT: '0',
      LOG_LEVEL: 'info',
    });
    assertStartupError(result, /database/i);
    assert.match(result.stderr, /127\.0\.0\.1:1/, 'the message says where');
    assert.match(result.stderr, /ECONNREFUSED|refused|unreachable/i, 'the message says why');
    assert.equal((result.stdout + result.stderr).includes('hunter2-not-shown'), false, 'the password was printed');
  });

  for (const url of ['postgres://', 'postgresql://', 'postgres://[not-a-host/x']) {
    it(`a malformed DATABASE_URL (${url})`, { timeout: COMMAND_TIMEOUT_MS }, async () => {
      const result = await cli(['serve'], { DATABASE_URL: url, USER_TOKEN_SECRET: TEST_SECRET, PII_KEYS, PORT: '0' });
      assertStartupError(result, /DATABASE_URL/);
    });
  }

  it('a PostgreSQL URL without USER_TOKEN_SECRET names the variable and writes no key file', { timeout: COMMAND_TIMEOUT_MS }, async () => {
    const cwd = makeTempDir('ops');
    const rootFiles = [join(ROOT, 'user-token.secret'), join(ROOT, 'data', 'user-token.secret')];
    const existedBefore = rootFiles.map((file) => existsSync(file));
    // A reachable server (when there is one), so the refusal is about the secret, not the connection.
    const result = await cli(['serve'], { DATABASE_URL: TEST_DATABASE_URL, PII_KEYS, PORT: '0', LOG_LEVEL: 'info' }, cwd);
    assertStartupError(result, /USER_TOKEN_SECRET/);
    const created = readdirSync(cwd, { recursive: true }).map(String);
    assert.deepEqual(
      created.filter((name) => name.endsWith('user-token.secret')),
      [],
      `a key file was written in the working directory: ${created.join(', ')}`,
    );
    assert.deepEqual(created, [], `nothing is written in the working directory: ${created.join(', ')}`);
    assert.deepEqual(
      rootFiles.map((file) => existsSync(file)),
      existedBefore,
      'a key file appeared in the project directory',
    );

    // The same with an empty USER_TOKEN_SECRET, and with `migrate`/`keys` not being the issue: serve alone needs it.
    const empty = await cli(['serve'], { DATABASE_URL: TEST_DATABASE_URL, USER_TOKEN_SECRET: '', PII_KEYS, PORT: '0' }, cwd);
    assertStartupError(empty, /USER_TOKEN_SECRET/);
    assert.deepEqual(readdirSync(cwd, { recursive: true }), []);
  });

  it('a USER_TOKEN_SECRET shorter than 32 characters', { timeout: COMMAND_TIMEOUT_MS }, async () => {
    const result = await cli(['serve'], { DATABASE_URL: TEST_DATABASE_URL, USER_TOKEN_SECRET: 'tiny-secret-value', PII_KEYS, PORT: '0' }, makeTempDir('ops'));
    assertStartupError(result, /USER_TOKEN_SECRET.*32/);
    assert.equal(result.stderr.includes('tiny-secret-value'), false, 'the secret itself is not echoed');
  });
});
