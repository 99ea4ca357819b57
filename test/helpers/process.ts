// Runs the users-api CLI and server as real child processes, the way an operator would, and cleans up after them.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../../src/db/database.js';
import { migrateToLatest } from '../../src/db/migrations.js';
import { createApiKey, type IssuedKey } from '../../src/keys/keys.service.js';
import { ENVIRONMENT_HELP } from '../../src/config.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** When a source file under `dir` last changed (ms since the epoch). */
function newestSource(dir: string): number {
  return Math.max(
    0,
    ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) return newestSource(path);
      return entry.name.endsWith('.ts') ? statSync(path).mtimeMs : 0;
    }),
  );
}

/** The build's users-api: every source file bundled into one module by scripts/bundle.mjs (npm run build). */
const BUILT = join(ROOT, 'dist', 'main.js');

/**
 * How a child runs users-api: as installed, `node dist/main.js` (npm ci builds it through `prepare`), when that build
 * is newer than every source file; otherwise src/main.ts under tsx (by absolute URL, so a child can run with a
 * working directory outside the project), so that an edit is tested before it is built. The build starts about
 * three times faster, and the CLI suites start a few hundred children.
 */
const USERS_API: readonly string[] =
  existsSync(BUILT) && statSync(BUILT).mtimeMs >= newestSource(join(ROOT, 'src'))
    ? [BUILT]
    : ['--import', import.meta.resolve('tsx'), join(ROOT, 'src', 'main.ts')];

export const COMMAND_TIMEOUT_MS = 20_000;
export const SERVE_TIMEOUT_MS = 30_000;
export const STOP_TIMEOUT_MS = 15_000;

/**
 * Variables the children must not inherit from whoever runs the tests: every one the service reads (taken from
 * ENVIRONMENT_HELP in src/config.ts), so a developer's shell cannot change what a test means, and NODE_TEST_CONTEXT,
 * which would make a child behave as a node:test subprocess. A child that needs one gets it explicitly.
 */
export const CONFIG_VARS: readonly string[] = [
  // Every variable `users-api --help` documents, read from that text so the list cannot fall behind.
  ...[...ENVIRONMENT_HELP.matchAll(/^ {2}([A-Z][A-Z0-9_]+)/gm)].map((match) => match[1] ?? ''),
  'NODE_TEST_CONTEXT',
];

/** This process's environment without CONFIG_VARS, plus `env`. */
export function childEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = { ...process.env };
  for (const name of CONFIG_VARS) delete base[name];
  return { ...base, ...env };
}

// Tracked so that a test that fails half-way leaves no server running and no files behind.
const children = new Set<ChildProcess>();
const tempDirs: string[] = [];

/** A fresh directory under the system temp dir, removed by cleanUpProcesses. */
export function makeTempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `users-api-${name}-`));
  tempDirs.push(dir);
  return dir;
}

/** For the file's after(): SIGKILLs every child still running and removes every temp dir. */
export function cleanUpProcesses(): void {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Result extends Exit {
  stdout: string;
  stderr: string;
}

/** A child with its output collected as it comes, so a failure can show what it printed. */
export interface ChildRun {
  /** Names the child in failure messages. */
  name: string;
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<Exit>;
}

/** `command` as a tracked child (see cleanUpProcesses) with `env` on top of childEnv, its output collected. */
export function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, stdin: 'ignore' | 'pipe' = 'ignore'): ChildRun {
  const child = spawn(command, args, { cwd, env: childEnv(env), stdio: [stdin, 'pipe', 'pipe'] });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<Exit>((resolve, reject) => {
    child.on('error', (error) => {
      children.delete(child);
      reject(error);
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  // Whoever awaits `exited` still sees a spawn error; this only keeps it from being reported as unhandled first.
  exited.catch(() => undefined);
  return { name, child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** A TCP port on 127.0.0.1 that was free a moment ago, for a child that cannot be told to pick one itself. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The TCP ports a process listens on (Linux: its socket inodes looked up in /proc/net/tcp and tcp6), sorted; undefined
 * where /proc does not tell.
 */
export function listeningPorts(pid: number): number[] | undefined {
  if (!existsSync('/proc/net/tcp')) return undefined;
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const socket = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (socket) inodes.add(socket[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      const LISTEN = '0A';
      if (fields[3] === LISTEN && inodes.has(fields[9] ?? '')) ports.add(parseInt(fields[1]!.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** The exit status, or SIGKILL and a failure if it takes longer than `timeoutMs`. */
export async function exitOf(proc: ChildRun, timeoutMs = STOP_TIMEOUT_MS): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      proc.child.kill('SIGKILL');
      reject(new Error(`${proc.name} did not exit within ${timeoutMs} ms\nstdout: ${tail(proc.stdout())}\nstderr: ${proc.stderr()}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A server logs every request: only the end of its output says why it failed. */
function tail(output: string): string {
  return output.slice(-2000);
}

/** Runs `command` to completion with `env` on top of childEnv, killing it after `timeoutMs`. */
export async function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
  { cwd = ROOT, timeoutMs = COMMAND_TIMEOUT_MS, name = `${command} ${args.join(' ')}` } = {},
): Promise<Result> {
  const started = start(name, command, args, env, cwd);
  const exit = await exitOf(started, timeoutMs);
  return { ...exit, stdout: started.stdout(), stderr: started.stderr() };
}

/** `users-api ARGS` run to completion in `cwd`. */
export function cli(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<Result> {
  return run(process.execPath, [...USERS_API, ...args], env, { cwd, name: `users-api ${args.join(' ')}` });
}

/** `users-api ARGS` started with its standard input open (`child.stdin`), for the test to feed and end. */
export function startCli(args: string[], env: NodeJS.ProcessEnv): ChildRun {
  return start(`users-api ${args.join(' ')}`, process.execPath, [...USERS_API, ...args], env, ROOT, 'pipe');
}

/** A failure reported in one `users-api: ...` line, with no stack trace, and a non-zero exit code (not a signal). */
export function assertOneLineError(result: Result, pattern: RegExp): void {
  assert.notEqual(result.code, 0, `expected a non-zero exit: ${JSON.stringify(result)}`);
  assert.equal(result.code === null, false, `expected an exit code, got signal ${result.signal}`);
  assert.equal(result.signal, null);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0] ?? '', /^users-api: /);
  assert.match(lines[0] ?? '', pattern);
  assert.doesNotMatch(result.stderr + result.stdout, /\n\s+at .+[:(]/, 'a stack trace was printed');
}

/** Polls `probe` until it returns something truthy; fails after `timeoutMs` or when `child` exits first. */
export function waitFor<T>(probe: () => T | null | undefined | false, timeoutMs: number, explain: () => string, child?: ChildProcess): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      const found = probe();
      if (found) {
        clearInterval(poll);
        resolve(found);
      } else if (child && !isRunning(child)) {
        clearInterval(poll);
        reject(new Error(`exited early (${child.exitCode ?? child.signalCode}): ${explain()}`));
      } else if (Date.now() - started > timeoutMs) {
        clearInterval(poll);
        reject(new Error(`timed out after ${timeoutMs} ms: ${explain()}`));
      }
    }, 20);
  });
}

export interface ServerProcess extends ChildRun {
  /** http://127.0.0.1:PORT */
  base: string;
  port: number;
}

/** pino's JSON line (stdout is not a terminal) once the server listens; the base URL and port are the groups. */
const LISTENING = /"msg":"Server listening at (http:\/\/127\.0\.0\.1:(\d+))"/;

/**
 * `users-api serve` (or `users-api ARGS`) on PORT=0 (the OS picks a free port, so files can run in parallel), resolved
 * once stdout matches `ready`, whose groups 1 and 2 must be the base URL and the port.
 */
export async function startServer(
  env: NodeJS.ProcessEnv,
  { name = 'server', ready = LISTENING, args = ['serve'] } = {},
): Promise<ServerProcess> {
  const defaults = { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' };
  const server = start(name, process.execPath, [...USERS_API, ...args], { ...defaults, ...env }, ROOT);
  const match = await waitFor(
    () => ready.exec(server.stdout()),
    SERVE_TIMEOUT_MS,
    () => `${name} not ready\nstdout: ${tail(server.stdout())}\nstderr: ${server.stderr()}`,
    server.child,
  );
  return { ...server, base: match[1] ?? '', port: Number(match[2]) };
}

/** SIGTERM (unless it already exited), and the exit status: see exitOf. */
export function stopServer(server: ChildRun, timeoutMs = STOP_TIMEOUT_MS): Promise<Exit> {
  if (isRunning(server.child)) server.child.kill('SIGTERM');
  return exitOf(server, timeoutMs);
}

/** A migrated SQLite store in a temp dir with one API key, closed again so that the server alone holds the file. */
export async function sqliteStoreWithKey(name: string): Promise<{ dir: string; path: string; key: IssuedKey }> {
  const dir = makeTempDir(name);
  const path = join(dir, 'users.db');
  const db = openDatabase({ kind: 'sqlite', path });
  try {
    await migrateToLatest(db);
    return { dir, path, key: await createApiKey(db, { name }) };
  } finally {
    await db.destroy();
  }
}
