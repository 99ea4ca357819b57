// The users-api command, run as a child process exactly as an operator would run it.
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { jwtVerify } from 'jose';
import { openStore, STORES } from './helpers/app.js';
import {
  assertOneLineError,
  cleanUpProcesses,
  cli,
  COMMAND_TIMEOUT_MS,
  makeTempDir,
  ROOT,
  run,
  SERVE_TIMEOUT_MS,
  startServer,
  stopServer,
} from './helpers/process.js';

/** Shorter than the shared default: two starts and two stops must fit in the serve test's SERVE_TIMEOUT_MS * 3. */
const CLI_STOP_TIMEOUT_MS = 10_000;

/** An environment the service refuses (an invalid PORT, an unreachable database): commands that need none still work. */
const BROKEN_ENV = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none', PORT: 'eighty' };

/** The API's time format (as users' created_at): ISO 8601, UTC, microseconds; and a time between `since` and now. */
function assertApiTime(value: unknown, since: number): void {
  assert.ok(typeof value === 'string', `not a time: ${String(value)}`);
  assert.match(value, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  const at = Date.parse(value);
  assert.ok(at >= since - 1000 && at <= Date.now() + 1000, `${value} is not the time it was made`);
}

/** The command names under "Commands:" in a help page, without commander's own `help`. */
function commandsIn(help: string): string[] {
  return [...(/^Commands:\n((?: {2}.*\n?)+)/m.exec(help)?.[1] ?? '').matchAll(/^ {2}(\S+)/gm)]
    .map((m) => m[1] ?? '')
    .filter((name) => name !== 'help');
}

/**
 * At most this many `--help` children at once: each is a cold start, and with every command's started together on
 * two cores the last ones ran past COMMAND_TIMEOUT_MS.
 */
const HELP_CONCURRENCY = 3;
let helpRunning = 0;
const helpWaiting: Array<() => void> = [];

async function helpOf(path: string[]) {
  if (helpRunning < HELP_CONCURRENCY) helpRunning++;
  else await new Promise<void>((resolve) => helpWaiting.push(resolve)); // handed a finished one's slot
  try {
    return await cli([...path, '--help'], BROKEN_ENV);
  } finally {
    const next = helpWaiting.shift();
    if (next) next();
    else helpRunning--;
  }
}

/** Every command at and below `path`, found through the help pages (each checked on the way), parents first. */
async function walkHelp(path: string[]): Promise<{ path: string; leaf: boolean }[]> {
  const result = await helpOf(path);
  const name = ['users-api', ...path].join(' ');
  assert.equal(result.code, 0, `${name} --help: ${result.stderr}`);
  assert.equal(result.stderr, '', `${name} --help wrote to stderr`);
  assert.match(result.stdout, new RegExp(`^Usage: ${name} `), `${name} --help printed someone else's usage`);
  const subs = commandsIn(result.stdout);
  const below = await Promise.all(subs.map((sub) => walkHelp([...path, sub])));
  return [{ path: path.join(' '), leaf: subs.length === 0 }, ...below.flat()];
}

let tree: ReturnType<typeof walkHelp> | undefined;
/** The CLI's commands, walked once for this file. */
const commandTree = () => (tree ??= walkHelp([]));

function tempDb(): { dir: string; db: string } {
  const dir = makeTempDir('cli');
  return { dir, db: join(dir, 'users.db') };
}

after(cleanUpProcesses);

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

  it(
    '--help works for every command and subcommand, with exit 0, without a database or a valid environment',
    { timeout: COMMAND_TIMEOUT_MS * 8 },
    async () => {
      assert.deepEqual(
        (await commandTree()).map((command) => command.path),
        ['', 'serve', 'migrate', 'keys', 'keys create', 'keys list', 'keys revoke', 'pii', 'pii new-key', 'pii rotate', 'import', 'export', 'backup', 'restore', 'webhooks', 'webhooks list', 'webhooks deliveries', 'webhooks retry'],
      );
    },
  );

  it('--version and -V print the version from package.json and exit 0, without a valid environment', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.match(version, /^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-V']) {
      const result = await cli([flag], BROKEN_ENV);
      assert.equal(result.code, 0, `${flag}: ${result.stderr}`);
      assert.equal(result.stdout, `${version}\n`);
      assert.equal(result.stderr, '');
    }
  });

  it('an unknown command is named, with the commands there are, in one line and a non-zero exit', { timeout: COMMAND_TIMEOUT_MS * 4 }, async () => {
    const cases: [string[], RegExp][] = [
      [['bogus'], /unknown command 'bogus'\. Commands: serve, migrate, keys, pii, import, export, backup, restore, webhooks\b/],
      [['exports'], /unknown command 'exports'\. Commands: serve, migrate, keys, pii, import, export, backup, restore, webhooks\b/],
      [['keys', 'bogus'], /unknown command 'keys bogus'\. Commands: keys create, keys list, keys revoke\b/],
      [['pii', 'bogus'], /unknown command 'pii bogus'\. Commands: pii new-key, pii rotate\b/],
    ];
    for (const [args, message] of cases) {
      const { db } = tempDb();
      const result = await cli(args, { DATABASE_URL: db, PORT: '0', LOG_LEVEL: 'warn' });
      assertOneLineError(result, message);
      assert.equal(result.stdout, '', `users-api ${args.join(' ')} printed to stdout`);
      assert.equal(existsSync(db), false, `users-api ${args.join(' ')} opened the database`);
    }
  });

  it('pii rotate --batch takes a positive integer, and says so before it needs a database', { timeout: COMMAND_TIMEOUT_MS * 3 }, async () => {
    for (const batch of ['abc', '0', '10x']) {
      const result = await cli(['pii', 'rotate', '--batch', batch], BROKEN_ENV);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`^error: option '--batch <n>' argument '${batch}' is invalid\\. Expected a positive integer\\.`));
      assert.equal(result.stdout, '');
    }
  });

  for (const store of STORES) {
    describe(`migrate and keys on one database (${store})`, () => {
      const env: NodeJS.ProcessEnv = {};
      let sqliteFile: string | undefined;
      let drop = async () => undefined;
      let first: { client_id: string; api_key_id: string; api_key_secret: string };
      let second: { client_id: string; api_key_id: string; api_key_secret: string };
      const started = Date.now();

      before(async () => {
        if (store === 'sqlite') {
          sqliteFile = tempDb().db;
          env.DATABASE_URL = sqliteFile;
        } else {
          const opened = await openStore(store, { migrate: false });
          Object.assign(env, opened.env);
          drop = async () => void (await opened.drop());
        }
      });
      after(() => drop());

      it('migrate applies the migrations, and a second run is already up to date', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
        const one = await cli(['migrate'], env);
        assert.equal(one.code, 0, one.stderr);
        assert.match(one.stdout, /^applied \S+/m);
        assert.doesNotMatch(one.stdout, /already up to date/);
        if (sqliteFile) assert.ok(statSync(sqliteFile).isFile(), 'the database file exists');
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
        const [header, ...lines] = result.stdout.trim().split('\n');
        assert.equal(header, ['api_key_id', 'client_id', 'name', 'created_at', 'revoked_at'].join('\t'));
        const rows = lines.map((line) => line.split('\t'));
        for (const row of rows) assertApiTime(row[3], started);
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

      it('keys list --json names the key api_key_id as keys create does, with the API\'s times', { timeout: COMMAND_TIMEOUT_MS * 2 }, async () => {
        const result = await cli(['keys', 'list', '--json'], env);
        assert.equal(result.code, 0, result.stderr);
        const rows = JSON.parse(result.stdout) as Record<string, unknown>[];
        for (const row of rows) assert.deepEqual(Object.keys(row), ['api_key_id', 'client_id', 'name', 'created_at', 'revoked_at']);
        assert.deepEqual(
          rows.map(({ api_key_id, client_id, name, revoked_at }) => ({ api_key_id, client_id, name, revoked_at })),
          [
            { api_key_id: first.api_key_id, client_id: first.client_id, name: 'acme', revoked_at: null },
            { api_key_id: second.api_key_id, client_id: first.client_id, name: 'second', revoked_at: null },
          ],
        );
        for (const row of rows) assertApiTime(row.created_at, started);
        const text = await cli(['keys', 'list'], env);
        assert.equal(text.code, 0, text.stderr);
        assert.deepEqual(
          text.stdout.trim().split('\n').slice(1).map((line) => line.split('\t')[3]),
          rows.map((row) => row.created_at),
          'the text and JSON listings print the same times',
        );
      });

      it('keys revoke marks the key revoked; revoking it again fails in one line', { timeout: COMMAND_TIMEOUT_MS * 3 }, async () => {
        const revoke = await cli(['keys', 'revoke', first.api_key_id], env);
        assert.equal(revoke.code, 0, revoke.stderr);
        assert.match(revoke.stdout, new RegExp(first.api_key_id));

        const list = await cli(['keys', 'list', '--json'], env);
        assert.equal(list.code, 0, list.stderr);
        const rows = JSON.parse(list.stdout) as { api_key_id: string; revoked_at: string | null }[];
        const revoked = rows.find((r) => r.api_key_id === first.api_key_id);
        const kept = rows.find((r) => r.api_key_id === second.api_key_id);
        assert.ok(revoked && kept);
        assertApiTime(revoked.revoked_at, started);
        assert.equal(kept.revoked_at, null);
        for (const secret of [first.api_key_secret, second.api_key_secret]) assert.equal(list.stdout.includes(secret), false);

        const text = await cli(['keys', 'list'], env);
        const line = text.stdout.split('\n').find((l) => l.startsWith(first.api_key_id));
        assert.ok(line);
        assert.equal(line.split('\t').at(-1), revoked.revoked_at, 'the text listing shows the key revoked, at the same time');

        const again = await cli(['keys', 'revoke', first.api_key_id], env);
        assertOneLineError(again, new RegExp(first.api_key_id));
        const unknown = await cli(['keys', 'revoke', 'no-such-key'], env);
        assertOneLineError(unknown, /no-such-key/);
      });
    });
  }

  describe('serve', () => {
    it(
      'on a fresh store prints a development key and a curl line that works; keeps the key file 0600; exits 0 on SIGTERM',
      { timeout: SERVE_TIMEOUT_MS * 3 },
      async () => {
        const { dir, db } = tempDb();
        const env = { DATABASE_URL: db, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' };
        const server = await startServer(env, { ready: /API reference: (http:\/\/127\.0\.0\.1:(\d+))\/docs\n/ });
        let token: string;
        let clientId: string;
        let credentials: string;
        try {
          const banner = server.stdout();
          const curl = banner.split('\n').map((l) => l.trim()).find((l) => l.startsWith('curl '));
          assert.ok(curl, `no curl line in:\n${banner}`);
          const port = server.port;
          assert.ok(curl.includes(`http://127.0.0.1:${port}/v2/users`), curl);
          assert.ok(banner.includes(`Console (sign in with this key): http://127.0.0.1:${port}/console\n`), banner);
          clientId = banner.match(/client_id\s+(\S+)/)?.[1] ?? '';
          const keyId = banner.match(/api_key_id\s+(\S+)/)?.[1] ?? '';
          const secret = banner.match(/api_key_secret\s+(\S+)/)?.[1] ?? '';
          assert.ok(clientId && keyId && secret, banner);
          credentials = `${keyId}:${secret}`;
          assert.ok(curl.includes(credentials), 'the curl line carries the printed key');

          const result = await run('bash', ['-c', curl]);
          assert.equal(result.code, 0, result.stderr);
          const body = JSON.parse(result.stdout);
          assert.deepEqual(Object.keys(body), ['user_token', 'id']);
          assert.match(body.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
          token = body.user_token;

          // The key file beside the database, owner-only: its contents, as they are, verify the token.
          const keyFile = join(dir, 'user-token.secret');
          assert.equal(statSync(keyFile).mode & 0o777, 0o600);
          const fileSecret = readFileSync(keyFile, 'utf8');
          assert.ok(fileSecret.length >= 32);
          const { payload } = await jwtVerify(token, new TextEncoder().encode(fileSecret), { algorithms: ['HS256'] });
          assert.equal(payload.user_id, body.id);
          assert.equal(payload.client_id, clientId);

          // The secret is shown once and never logged.
          assert.equal(server.stderr().includes(secret), false);
        } finally {
          const exit = await stopServer(server, CLI_STOP_TIMEOUT_MS);
          assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr()}`);
        }

        // A restart keeps the key file, creates no new development key, and honours the earlier token.
        const secretBefore = readFileSync(join(dir, 'user-token.secret'), 'utf8');
        const again = await startServer({ ...env, LOG_LEVEL: 'info' });
        try {
          const base = again.base;
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
          const exit = await stopServer(again, CLI_STOP_TIMEOUT_MS);
          assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${again.stderr()}`);
        }
      },
    );

    it('is the default: users-api with no command serves', { timeout: SERVE_TIMEOUT_MS + CLI_STOP_TIMEOUT_MS }, async () => {
      const { db } = tempDb();
      const server = await startServer({ DATABASE_URL: db }, { args: [] });
      try {
        const res = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(10_000) });
        assert.equal(res.status, 200);
      } finally {
        const exit = await stopServer(server, CLI_STOP_TIMEOUT_MS);
        assert.deepEqual(exit, { code: 0, signal: null }, `stderr: ${server.stderr()}`);
      }
    });

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
        const result = await cli(['serve'], { DATABASE_URL: db, PORT: String(address.port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
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

  describe('README', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    /** The text of the README section headed `## title`, up to the next `## ` heading. */
    const section = (title: string) => {
      const start = readme.indexOf(`\n## ${title}\n`);
      assert.notEqual(start, -1, `no section ${title}`);
      const end = readme.indexOf('\n## ', start + 1);
      return readme.slice(start, end === -1 ? undefined : end);
    };

    it('the CLI section shows every command, --version and --help', { timeout: COMMAND_TIMEOUT_MS * 8 }, async () => {
      const text = section('The CLI');
      const leaves = (await commandTree()).filter((command) => command.leaf).map((command) => command.path);
      assert.ok(leaves.length >= 8, leaves.join(', '));
      for (const command of [...leaves, '--version', '--help']) {
        assert.match(text, new RegExp(`^npx users-api ${command}(?: |$)`, 'm'), `the CLI section has no example of ${command}`);
      }
    });

    it('the PostgreSQL recipe says which PORT to use while an embedded instance holds 8080', () => {
      const text = section('Running on PostgreSQL');
      assert.match(text, /\bPORT=(?!8080)\d+ npm start\b/);
      assert.match(text, /8080/);
    });
  });

  describe('build', () => {
    const BUILD_TIMEOUT_MS = 180_000;
    let dir = '';
    before(() => {
      // What the build reads, copied to a temp dir with the project's node_modules: the tree under test is not rebuilt.
      // The typed client's source too (the build builds it first), without its build output.
      dir = makeTempDir('build');
      for (const entry of ['src', 'scripts', 'console', 'clients', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
        cpSync(join(ROOT, entry), join(dir, entry), { recursive: true, filter: (source) => basename(source) !== 'dist' });
      }
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    });
    const npmRun = (...args: string[]) => run('npm', ['run', ...args], {}, { cwd: dir, timeoutMs: BUILD_TIMEOUT_MS });
    const version = async () => (await run(process.execPath, [join(dir, 'dist', 'main.js'), '--version'], {}, { cwd: dir })).stdout;
    /** Every source file has its compiled file. */
    const assertComplete = () => {
      const sources = readdirSync(join(dir, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
      assert.ok(sources.length > 20);
      const missing = sources.filter((f) => !existsSync(join(dir, 'dist', f.replace(/\.ts$/, '.js'))));
      assert.deepEqual(missing, [], 'compiled files missing from dist/');
      assert.ok(existsSync(join(dir, 'dist', 'console', 'index.html')), 'the console was not built into dist/console');
      assert.ok(existsSync(join(dir, 'clients', 'typescript', 'dist', 'signing.js')), 'the typed client was not built');
    };
    const { version: expected } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

    it('npm start builds again only when a source changed', { timeout: BUILD_TIMEOUT_MS * 3 }, async () => {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
      assert.equal(pkg.scripts.prestart, 'npm run build');
      const first = await npmRun('build');
      assert.equal(first.code, 0, first.stdout + first.stderr);
      assertComplete();
      assert.equal(await version(), `${expected}\n`);

      // --diagnostics prints the compiler's file counts whenever it loads the program: nothing changed, so it must not.
      const unchanged = await npmRun('build', '--', '--diagnostics');
      assert.equal(unchanged.code, 0, unchanged.stdout + unchanged.stderr);
      assert.doesNotMatch(unchanged.stdout, /^Files:/m, 'the build compiled again although nothing had changed');

      const main = join(dir, 'src', 'main.ts');
      writeFileSync(main, readFileSync(main, 'utf8').replace('.version(version)', ".version(`${version}-edited`)"));
      const changed = await npmRun('build', '--', '--diagnostics');
      assert.equal(changed.code, 0, changed.stdout + changed.stderr);
      assert.match(changed.stdout, /^Files:/m);
      assert.equal(await version(), `${expected}-edited\n`, 'the change was not built');
    });

    it('a build after dist/ or everything in it was removed emits all of dist/ again', { timeout: BUILD_TIMEOUT_MS * 3 }, async () => {
      assert.ok(existsSync(join(dir, 'dist', 'main.js')), 'the previous test built dist/');
      rmSync(join(dir, 'dist'), { recursive: true });
      const afterRemoval = await npmRun('build');
      assert.equal(afterRemoval.code, 0, afterRemoval.stdout + afterRemoval.stderr);
      assertComplete();

      for (const entry of readdirSync(join(dir, 'dist'))) rmSync(join(dir, 'dist', entry), { recursive: true });
      const afterEmptying = await npmRun('build');
      assert.equal(afterEmptying.code, 0, afterEmptying.stdout + afterEmptying.stderr);
      assertComplete();
      assert.equal(await version(), `${expected}-edited\n`, 'dist/ holds the sources as they are now');
    });
  });
});
