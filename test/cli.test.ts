// The users-api command, run as a child process exactly as an operator would run it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { jwtVerify } from 'jose';
import { deriveKey } from '../src/secrets.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COMMAND_TIMEOUT_MS = 20_000;
const SERVE_TIMEOUT_MS = 30_000;

/** Configuration variables the children must not inherit from whoever runs the tests. */
const CONFIG_VARS = [
  'PORT',
  'HOST',
  'DATABASE_URL',
  'USER_TOKEN_SECRET',
  'USER_TOKEN_ISSUER',
  'LOG_LEVEL',
  'TRUST_PROXY',
  'BODY_LIMIT',
  'MIGRATE_ON_START',
  'SHUTDOWN_TIMEOUT_MS',
  'DATABASE_SCHEMA',
  'DATABASE_POOL_SIZE',
  'DATABASE_STATEMENT_TIMEOUT_MS',
  'NODE_TEST_CONTEXT',
];

const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

function tempDb(): { dir: string; db: string } {
  const dir = mkdtempSync(join(tmpdir(), 'users-api-cli-'));
  tempDirs.push(dir);
  return { dir, db: join(dir, 'users.db') };
}

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of CONFIG_VARS) delete base[name];
  return { ...base, ...env };
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killing it after `timeoutMs`. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      children.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** `users-api ARGS` on the database at `db`. */
function cli(args: string[], env: Record<string, string>): Promise<Result> {
  return run(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], childEnv(env));
}

/** A failure reported in one `users-api: ...` line, with no stack trace. */
function assertOneLineError(result: Result, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a non-zero exit: ${JSON.stringify(result)}`);
  assert.equal(result.signal, null);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0] ?? '', /^users-api: /);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(result.stderr + result.stdout, /\n\s+at .+[:(]/, 'a stack trace was printed');
}

interface Server_ {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `users-api serve` and resolves once stdout matches `ready`. */
async function startServer(env: Record<string, string>, ready: RegExp): Promise<Server_ & { match: RegExpMatchArray }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
    cwd: ROOT,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      clearInterval(poll);
      reject(new Error(`server not ready after ${SERVE_TIMEOUT_MS} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, SERVE_TIMEOUT_MS);
    const poll = setInterval(() => {
      const found = stdout.match(ready);
      if (found) {
        clearTimeout(timer);
        clearInterval(poll);
        resolve(found);
      } else if (child.exitCode !== null || child.signalCode !== null) {
        clearTimeout(timer);
        clearInterval(poll);
        reject(new Error(`server exited early (${child.exitCode ?? child.signalCode})\nstdout: ${stdout}\nstderr: ${stderr}`));
      }
    }, 50);
  });
  return { child, match, stdout: () => stdout, stderr: () => stderr, exited };
}

/** SIGTERM, and the exit status (SIGKILL after a timeout, which then fails the test). */
async function stopServer(server: Server_): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  server.child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      server.child.kill('SIGKILL');
      reject(new Error(`server did not exit within 10 s of SIGTERM\nstderr: ${server.stderr()}`));
    }, 10_000);
  });
  try {
    return await Promise.race([server.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

after(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe('users-api CLI', () => {
  it('--help exits 0 and documents the commands and every environment variable', { timeout: COMMAND_TIMEOUT_MS }, async () => {
    const { db } = tempDb();
    const result = await cli(['--help'], { DATABASE_URL: db });
    assert.equal(result.code, 0, result.stderr);
    for (const word of ['serve', 'migrate', 'keys', 'PORT', 'HOST', 'DATABASE_URL', 'USER_TOKEN_SECRET', 'LOG_LEVEL']) {
      assert.match(result.stdout, new RegExp(`\\b${word}\\b`), `--help does not mention ${word}`);
    }
    assert.match(result.stdout, /PORT\s+.*8080/, 'the PORT default is documented');
    assert.match(result.stdout, /DATABASE_URL\s+.*\.\/data\/users\.db/, 'the DATABASE_URL default is documented');
  });

  it('keys --help lists create, list and revoke', { timeout: COMMAND_TIMEOUT_MS }, async () => {
    const { db } = tempDb();
    const result = await cli(['keys', '--help'], { DATABASE_URL: db });
    assert.equal(result.code, 0, result.stderr);
    for (const word of ['create', 'list', 'revoke']) assert.match(result.stdout, new RegExp(`\\b${word}\\b`));
  });

  describe('migrate and keys on one database', () => {
    const { db } = tempDb();
    const env = { DATABASE_URL: db };
    let first: { client_id: string; api_key_id: string; api_key_secret: string };
    let second: { client_id: string; api_key_id: string; api_key_secret: string };

    it('migrate applies the migrations, and a second run is already up to date', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
      const one = await cli(['migrate'], env);
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stdout, /^applied \S+/m);
      assert.doesNotMatch(one.stdout, /already up to date/);
      assert.ok(statSync(db).isFile(), 'the database file exists');
      const two = await cli(['migrate'], env);
      assert.equal(two.code, 0, two.stderr);
      assert.equal(two.stdout.trim(), 'already up to date');
    });

    it('keys create --json prints exactly client_id, api_key_id, api_key_secret', { timeout: COMMAND_TIMEOUT_MS }, async () => {
      const result = await cli(['keys', 'create', '--name', 'acme', '--json'], env);
      assert.equal(result.code, 0, result.stderr);
      first = JSON.parse(result.stdout);
      assert.deepEqual(Object.keys(first), ['client_id', 'api_key_id', 'api_key_secret']);
      for (const value of Object.values(first)) assert.ok(typeof value === 'string' && value.length >= 16, value);
      assert.notEqual(first.api_key_id, first.api_key_secret);
    });

    it('keys create --client reuses the client, with a new key id and secret', { timeout: COMMAND_TIMEOUT_MS }, async () => {
      const result = await cli(['keys', 'create', '--name', 'second', '--client', first.client_id, '--json'], env);
      assert.equal(result.code, 0, result.stderr);
      second = JSON.parse(result.stdout);
      assert.deepEqual(Object.keys(second), ['client_id', 'api_key_id', 'api_key_secret']);
      assert.equal(second.client_id, first.client_id);
      assert.notEqual(second.api_key_id, first.api_key_id);
      assert.notEqual(second.api_key_secret, first.api_key_secret);
    });

    it('keys create --client with an unknown client fails in one line and creates nothing', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
      const ghost = '00000000-0000-4000-8000-000000000000';
      const result = await cli(['keys', 'create', '--name', 'ghost', '--client', ghost, '--json'], env);
      assertOneLineError(result, new RegExp(ghost));
      assert.equal(result.stdout, '');
      const list = await cli(['keys', 'list'], env);
      assert.doesNotMatch(list.stdout, /ghost/);
      assert.equal(list.code, 0, list.stderr);
      assert.equal(list.stdout.includes(ghost), false);
    });

    it('keys list shows both keys and their client, never a secret', { timeout: COMMAND_TIMEOUT_MS }, async () => {
      const result = await cli(['keys', 'list'], env);
      assert.equal(result.code, 0, result.stderr);
      const rows = result.stdout.trim().split('\n').slice(1).map((line) => line.split('\t'));
      assert.deepEqual(
        rows.map((r) => r[0]),
        [first.api_key_id, second.api_key_id],
      );
      for (const row of rows) {
        assert.equal(row[1], first.client_id);
        assert.equal(row.at(-1), '-', 'not revoked');
      }
      assert.deepEqual(
        rows.map((r) => r[2]),
        ['acme', 'second'],
      );
      for (const secret of [first.api_key_secret, second.api_key_secret]) {
        assert.equal(result.stdout.includes(secret), false, 'keys list printed a secret');
        assert.equal(result.stderr.includes(secret), false);
      }
    });

    it('keys revoke marks the key revoked; revoking it again fails in one line', { timeout: COMMAND_TIMEOUT_MS * 3 }, async () => {
      const revoke = await cli(['keys', 'revoke', first.api_key_id], env);
      assert.equal(revoke.code, 0, revoke.stderr);
      assert.match(revoke.stdout, new RegExp(first.api_key_id));

      const list = await cli(['keys', 'list', '--json'], env);
      assert.equal(list.code, 0, list.stderr);
      const rows = JSON.parse(list.stdout) as { id: string; revoked_at: string | null }[];
      const revoked = rows.find((r) => r.id === first.api_key_id);
      const kept = rows.find((r) => r.id === second.api_key_id);
      assert.ok(revoked && kept);
      assert.ok(revoked.revoked_at !== null && !Number.isNaN(Date.parse(revoked.revoked_at)), 'revoked_at is a timestamp');
      assert.equal(kept.revoked_at, null);
      for (const secret of [first.api_key_secret, second.api_key_secret]) assert.equal(list.stdout.includes(secret), false);

      const text = await cli(['keys', 'list'], env);
      const line = text.stdout.split('\n').find((l) => l.startsWith(first.api_key_id));
      assert.ok(line);
      assert.notEqual(line.split('\t').at(-1), '-', 'the text listing shows the key revoked');

      const again = await cli(['keys', 'revoke', first.api_key_id], env);
      assertOneLineError(again, new RegExp(first.api_key_id));
      const unknown = await cli(['keys', 'revoke', 'no-such-key'], env);
      assertOneLineError(unknown, /no-such-key/);
    });
  });

  describe('serve', () => {
    it(
      'on a fresh store prints a development key and a curl line that works; keeps the key file 0600; exits 0 on SIGTERM',
      { timeout: SERVE_TIMEOUT_MS * 3 },
      async () => {
        const { dir, db } = tempDb();
        const env = { DATABASE_URL: db, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
        const server = await startServer(env, /API reference: (http:\/\/127\.0\.0\.1:(\d+))\/docs\n/);
        let token: string;
        let clientId: string;
        let credentials: string;
        try {
          const banner = server.stdout();
          const curl = banner.split('\n').map((l) => l.trim()).find((l) => l.startsWith('curl '));
          assert.ok(curl, `no curl line in:\n${banner}`);
          const port = server.match[2];
          assert.ok(curl.includes(`http://127.0.0.1:${port}/v2/users`), curl);
          clientId = banner.match(/client_id\s+(\S+)/)?.[1] ?? '';
          const keyId = banner.match(/api_key_id\s+(\S+)/)?.[1] ?? '';
          const secret = banner.match(/api_key_secret\s+(\S+)/)?.[1] ?? '';
          assert.ok(clientId && keyId && secret, banner);
          credentials = `${keyId}:${secret}`;
          assert.ok(curl.includes(credentials), 'the curl line carries the printed key');

          const result = await run('bash', ['-c', curl], childEnv({}));
          assert.equal(result.code, 0, result.stderr);
          const body = JSON.parse(result.stdout);
          assert.deepEqual(Object.keys(body), ['user_token', 'id']);
          assert.match(body.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
          token = body.user_token;

          // The key file beside the database, owner-only, is the key the server signs with.
          const keyFile = join(dir, 'user-token.secret');
          assert.equal(statSync(keyFile).mode & 0o777, 0o600);
          const fileSecret = readFileSync(keyFile, 'utf8').trim();
          assert.ok(fileSecret.length >= 32);
          const { payload } = await jwtVerify(token, deriveKey(fileSecret, 'user-token'), { algorithms: ['HS256'] });
          assert.equal(payload.user_id, body.id);
          assert.equal(payload.client_id, clientId);

          // The secret is shown once and never logged.
          assert.equal(server.stderr().includes(secret), false);
        } finally {
          const exit = await stopServer(server);
          assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr()}`);
        }

        // A restart keeps the key file, creates no new development key, and honours the earlier token.
        const secretBefore = readFileSync(join(dir, 'user-token.secret'), 'utf8');
        const again = await startServer({ ...env, LOG_LEVEL: 'info' }, /Server listening at (http:\/\/127\.0\.0\.1:\d+)/);
        try {
          const base = again.match[1];
          assert.doesNotMatch(again.stdout(), /development key/);
          assert.equal(readFileSync(join(dir, 'user-token.secret'), 'utf8'), secretBefore);
          const res = await fetch(`${base}/v2/user-tokens/introspect`, {
            method: 'POST',
            headers: {
              authorization: `Basic ${Buffer.from(credentials).toString('base64')}`,
              'content-type': 'application/json',
            },
            body: JSON.stringify({ user_token: token }),
            signal: AbortSignal.timeout(10_000),
          });
          assert.equal(res.status, 200);
          const introspection = (await res.json()) as { active: boolean; client_id?: string };
          assert.equal(introspection.active, true);
          assert.equal(introspection.client_id, clientId);
          assert.equal(again.stdout().includes(credentials.split(':')[1] ?? '-'), false, 'the secret was logged');
        } finally {
          const exit = await stopServer(again);
          assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${again.stderr()}`);
        }
      },
    );

    it('on a port already in use exits non-zero with a one-line users-api: message', { timeout: SERVE_TIMEOUT_MS }, async () => {
      const blocker: Server = createServer();
      await new Promise<void>((resolve, reject) => {
        blocker.once('error', reject);
        blocker.listen(0, '127.0.0.1', () => resolve());
      });
      try {
        const address = blocker.address();
        assert.ok(address && typeof address === 'object');
        const { db } = tempDb();
        const result = await run(
          process.execPath,
          ['--import', 'tsx', 'src/main.ts', 'serve'],
          childEnv({ DATABASE_URL: db, PORT: String(address.port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' }),
        );
        assertOneLineError(result, /EADDRINUSE|in use/i);
        assert.doesNotMatch(result.stdout, /development key/, 'no key is announced for a server that never started');
      } finally {
        await new Promise<void>((resolve) => blocker.close(() => resolve()));
      }
    });

    it('with an invalid PORT exits non-zero with a one-line users-api: message', { timeout: SERVE_TIMEOUT_MS }, async () => {
      const { db } = tempDb();
      const result = await cli(['serve'], { DATABASE_URL: db, PORT: 'eighty', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
      assertOneLineError(result, /PORT/);
    });
  });
});
