// Shared machinery of the benchmark: settings, child processes (pinned), stores, the service's CLI and
// server, the load generator (autocannon in bench/load.ts, or wrk when installed) and tables.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { freePort } from '../test/helpers/process.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'dist', 'main.js');

// ---------------------------------------------------------------- settings

export type StoreKind = 'sqlite' | 'postgres';
export type Tool = 'autocannon' | 'wrk';

function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

function chooseTool(): Tool {
  const wanted = process.env.BENCH_TOOL ?? 'auto';
  if (wanted === 'autocannon') return 'autocannon';
  if (wanted === 'wrk') {
    if (!which('wrk')) throw new Error('BENCH_TOOL=wrk but wrk is not on PATH');
    return 'wrk';
  }
  if (wanted !== 'auto') throw new Error(`BENCH_TOOL must be auto, autocannon or wrk, got "${wanted}"`);
  return which('wrk') ? 'wrk' : 'autocannon';
}

function chooseStores(): StoreKind[] {
  const stores = (process.env.BENCH_STORES ?? 'sqlite,postgres').split(',').map((s) => s.trim()).filter(Boolean);
  for (const store of stores) if (store !== 'sqlite' && store !== 'postgres') throw new Error(`unknown store "${store}" in BENCH_STORES`);
  return stores as StoreKind[];
}

export const settings = {
  durationSeconds: positive('BENCH_DURATION', 5),
  warmupSeconds: Number(process.env.BENCH_WARMUP ?? 1),
  connections: Math.round(positive('BENCH_CONNECTIONS', 10)),
  stores: chooseStores(),
  scale: ['1', 'true', 'yes'].includes((process.env.BENCH_SCALE ?? '').toLowerCase()),
  webhookRounds: Math.round(positive('BENCH_WEBHOOK_ROUNDS', 5)),
  /** BENCH_ONLY=webhooks|link: the ceiling and the webhook rounds, or the Link and accounts scenarios, only (quick A/B runs). */
  only: (['webhooks', 'link'] as const).find((only) => only === process.env.BENCH_ONLY),
  seedUsers: Math.round(positive('BENCH_SEED_USERS', 10_000)),
  scaleUsers: Math.round(positive('BENCH_SCALE_USERS', 1_000_000)),
  postgresUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  tool: chooseTool(),
  /** Server and load generator on separate CPUs where taskset exists and there are two or more. */
  taskset: availableParallelism() >= 2 ? which('taskset') : undefined,
  /** Extra attempts of a scenario whose run shared the server's CPU with other processes. */
  retries: Math.round(Number(process.env.BENCH_RETRIES ?? 2)),
  /** Other processes' CPU on the server's CPUs (in cores) above which a run counts as contended. */
  maxOtherCpu: Number(process.env.BENCH_MAX_OTHER_CPU ?? 0.1),
  serverCpus: process.env.BENCH_SERVER_CPUS ?? '0',
  /** Extra Node.js flags for the server process (experiments, e.g. "--max-semi-space-size=4"). */
  serverNodeArgs: (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean),
  loadCpus: process.env.BENCH_LOAD_CPUS ?? '1',
} as const;

/** The secret every bench server signs with (tokens, cursors); fixed so that runs are comparable. */
export const USER_TOKEN_SECRET = 'bench-user-token-secret-0123456789abcdefghij';
/** PII_KEYS: the AES-256-GCM key that encrypts ssn and birth_date at rest (required on PostgreSQL). */
export const PII_KEYS = `bench1:${Buffer.alloc(32, 7).toString('base64')}`;

// ---------------------------------------------------------------- processes and cleanup

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void> | void> = [];

export function onCleanup(step: () => Promise<void> | void): void {
  cleanups.push(step);
}

/** Stops every child still running and runs the cleanup steps (latest first). Idempotent. */
export async function cleanup(): Promise<void> {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  while (cleanups.length > 0) {
    const step = cleanups.pop()!;
    try {
      await step();
    } catch (error) {
      console.error(`cleanup: ${(error as Error).message}`);
    }
  }
}

function pinned(cpus: string, command: string, args: string[]): [string, string[]] {
  return settings.taskset ? [settings.taskset, ['-c', cpus, command, ...args]] : [command, args];
}

interface Spawned {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cpus?: string } = {}): Spawned {
  const [file, argv] = options.cpus ? pinned(options.cpus, command, args) : [command, args];
  const child = spawn(file, argv, { cwd: ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err = (err + chunk).slice(-20_000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve(code ?? (signal ? -1 : null));
    });
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs a command to completion; its stdout, or an error with its stderr. */
async function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cpus?: string } = {}): Promise<string> {
  const spawned = start(command, args, options);
  const code = await spawned.exited;
  if (code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited with ${code}\n${spawned.stderr().trim()}\n${spawned.stdout().slice(-2000)}`);
  }
  return spawned.stdout();
}

export function progress(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function workDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'users-api-bench-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function build(): Promise<void> {
  progress('npm run build');
  await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build']);
}

// ---------------------------------------------------------------- /proc

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU seconds (user + system) a process has used so far, or NaN where /proc is unavailable. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

/** CPU numbers of a taskset list such as "0", "0,2" or "0-3". */
function cpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to = from] = part.split('-').map(Number);
    return Array.from({ length: Math.max(0, (to ?? 0) - (from ?? 0) + 1) }, (_, i) => (from ?? 0) + i);
  });
}

/** Busy (non-idle, including stolen) CPU seconds of the given CPUs so far, from /proc/stat. */
export function busySeconds(cpus: number[]): number {
  try {
    const stat = readFileSync('/proc/stat', 'utf8');
    let ticks = 0;
    for (const cpu of cpus) {
      const fields = new RegExp(`^cpu${cpu} (.+)$`, 'm').exec(stat)?.[1]?.trim().split(/\s+/).map(Number);
      if (!fields) return Number.NaN;
      const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
      ticks += user + nice + system + irq + softirq + steal;
    }
    return ticks / CLOCK_TICKS;
  } catch {
    return Number.NaN;
  }
}

export interface Memory {
  /** VmRSS: resident now, in MB. */
  rssMb: number;
  /** VmHWM: the highest resident size so far, in MB. */
  peakMb: number;
}

export function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

export function machine(): Record<string, string> {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const load = existsSync('/proc/loadavg') ? readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') : 'n/a';
  return {
    cpus: `${availableParallelism()} × ${model}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    kernel: existsSync('/proc/sys/kernel/osrelease') ? readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() : process.platform,
    'load average': load,
  };
}

// ---------------------------------------------------------------- stores

export interface Store {
  kind: StoreKind;
  /** Where it lives, for the report. */
  where: string;
  /** Environment pointing the service (CLI and server) at this store. */
  env: NodeJS.ProcessEnv;
}

async function postgresAdmin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function postgresReachable(): Promise<boolean> {
  try {
    await postgresAdmin(settings.postgresUrl, (client) => client.query('select 1'));
    return true;
  } catch {
    return false;
  }
}

/** A fresh, empty store: a temporary directory for SQLite, a new schema for PostgreSQL (dropped at cleanup). */
export async function createStore(kind: StoreKind): Promise<Store & { drop: () => Promise<void> }> {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'users-api-bench-sqlite-'));
    const drop = async () => rmSync(dir, { recursive: true, force: true });
    onCleanup(drop);
    const path = join(dir, 'users.db');
    return { kind, where: path, env: { DATABASE_URL: path }, drop };
  }
  const schema = `bench_${randomBytes(6).toString('hex')}`;
  await postgresAdmin(settings.postgresUrl, (client) => client.query(`create schema ${schema}`));
  let dropped = false;
  const drop = async () => {
    if (dropped) return;
    dropped = true;
    await postgresAdmin(settings.postgresUrl, (client) => client.query(`drop schema if exists ${schema} cascade`));
  };
  onCleanup(drop);
  return { kind, where: `${settings.postgresUrl} schema ${schema}`, env: { DATABASE_URL: settings.postgresUrl, DATABASE_SCHEMA: schema }, drop };
}

// ---------------------------------------------------------------- the service: CLI and server

function serviceEnv(store: Store, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _options, PORT: _port, HOST: _host, ...inherited } = process.env;
  // The rate limiter stays on (its cost is part of every request) but with a ceiling no run reaches.
  // WEBHOOK_ALLOW_PRIVATE: the webhook scenario's receiver listens on loopback.
  return { ...inherited, LOG_LEVEL: 'warn', USER_TOKEN_SECRET, PII_KEYS, RATE_LIMIT_MAX: '10000000', WEBHOOK_ALLOW_PRIVATE: 'true', ...store.env, ...extra };
}

export interface ApiKey {
  client_id: string;
  api_key_id: string;
  api_key_secret: string;
}

export async function createKey(store: Store, name: string): Promise<ApiKey> {
  const out = await run(process.execPath, [MAIN, 'keys', 'create', '--name', name, '--json'], { env: serviceEnv(store) });
  return JSON.parse(out.trim().split('\n').at(-1) ?? '') as ApiKey;
}

export const authorization = (key: ApiKey) => `Basic ${Buffer.from(`${key.api_key_id}:${key.api_key_secret}`).toString('base64')}`;

export interface ImportResult {
  imported: number;
  rejected: number;
  seconds: number;
}

/** `users-api import --client ID file`, timed from spawn to exit. */
export async function importUsers(store: Store, clientId: string, file: string): Promise<ImportResult> {
  const started = performance.now();
  const out = await run(process.execPath, [MAIN, 'import', '--client', clientId, file], { env: serviceEnv(store) });
  const seconds = (performance.now() - started) / 1000;
  const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { imported?: number; rejected?: number };
  return { imported: result.imported ?? 0, rejected: result.rejected ?? 0, seconds };
}

export interface Server {
  pid: number;
  url: string;
  /** Milliseconds from spawn to the first 200 from GET /healthz. */
  coldStartMs: number;
  stop(): Promise<void>;
}

export interface Reply {
  status: number;
  body: string;
}

/** One HTTP request over a fresh connection (node:http, so no lazy loading skews cold-start timing). */
export function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForHealth(url: string, spawned: Spawned, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let exitCode: number | null | undefined;
  void spawned.exited.then((code) => (exitCode = code));
  for (;;) {
    if (exitCode !== undefined) throw new Error(`server exited with ${exitCode} before serving\n${spawned.stderr()}${spawned.stdout()}`);
    try {
      if ((await call(`${url}/healthz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`server did not answer /healthz within ${timeoutMs} ms\n${spawned.stderr()}`);
    await sleep(2);
  }
}

async function stopProcess(spawned: Spawned, graceMs = 15_000): Promise<void> {
  if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) return;
  spawned.child.kill('SIGTERM');
  const timer = setTimeout(() => spawned.child.kill('SIGKILL'), graceMs);
  await spawned.exited.catch(() => undefined);
  clearTimeout(timer);
}

/** `node dist/main.js serve` on the store, pinned to the server CPUs; resolves once /healthz answers. */
/** The service's server; `main` runs another build's dist/main.js (an A/B of two builds on one store). */
export async function startServer(store: Store, options: { nodeArgs?: string[]; main?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const spawned = start(process.execPath, [...settings.serverNodeArgs, ...(options.nodeArgs ?? []), options.main ?? MAIN, 'serve'], {
    env: serviceEnv(store, { ...options.env, PORT: String(port), HOST: '127.0.0.1' }),
    cpus: settings.serverCpus,
  });
  try {
    await waitForHealth(url, spawned, 60_000);
  } catch (error) {
    await stopProcess(spawned);
    throw error;
  }
  const coldStartMs = performance.now() - started;
  let stopping = false;
  void spawned.exited.then((code) => {
    if (!stopping) progress(`the server (pid ${spawned.child.pid}) exited unexpectedly with ${code}:\n${spawned.stderr()}${spawned.stdout()}`);
  });
  return {
    pid: spawned.child.pid!,
    url,
    coldStartMs,
    stop: () => {
      stopping = true;
      return stopProcess(spawned);
    },
  };
}

/** The bare node:http ceiling server (bench/ceiling.ts) answering with `bodyFile`, pinned like the service. */
export function startCeiling(bodyFile: string): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_OPTIONS;
  return startReference('ceiling.ts', [bodyFile], env);
}

/** bench/essential.ts on `store`: the GET's own work (key check, lookup, decryption, JSON) behind bare node:http. */
export function startEssential(store: Store): Promise<Server> {
  return startReference('essential.ts', [], serviceEnv(store));
}

/** A reference server from bench/ that prints "listening", pinned like the service. */
async function startReference(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  const spawned = start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', script), ...args], {
    env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
    cpus: settings.serverCpus,
  });
  for (const deadline = started + 60_000; !spawned.stdout().includes('listening'); await sleep(10)) {
    const { exitCode, signalCode } = spawned.child;
    if (exitCode !== null || signalCode !== null) throw new Error(`bench/${script} exited (${exitCode ?? signalCode})\n${spawned.stderr()}`);
    if (performance.now() > deadline) {
      await stopProcess(spawned);
      throw new Error(`bench/${script} did not listen within 60 s\n${spawned.stderr()}`);
    }
  }
  return { pid: spawned.child.pid!, url, coldStartMs: performance.now() - started, stop: () => stopProcess(spawned) };
}

// ---------------------------------------------------------------- load

export interface Request {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** What bench/load.ts reads. */
export interface LoadSpec {
  url: string;
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  headers: Record<string, string>;
  requestsFile: string;
  warmupRequestsFile?: string;
}

/** What bench/load.ts (or wrk through bench/wrk.lua) prints. */
export interface LoadResult {
  tool: Tool;
  requests: number;
  seconds: number;
  rps: number;
  /** Latency percentiles in milliseconds. */
  p50: number;
  p99: number;
  /** Responses outside 2xx (wrk: status >= 400). */
  non2xx: number;
  /** Socket errors and timeouts. */
  errors: number;
  statuses?: Record<string, number>;
  /** autocannon only: the load generator's own CPU over the measured part, in cores (near 1 = it was the bottleneck). */
  loaderCpu?: number;
}

export interface Measurement extends LoadResult {
  /** CPU used by the server during the measured part, in cores (1 = one core fully busy). */
  serverCpu: number;
  /** CPU used by the database server's processes (PostgreSQL), in cores, on any CPU; 0 for SQLite. */
  dbCpu: number;
  /** The server's resident memory (VmRSS) right after the run, in MB. */
  rssMb: number;
  /**
   * CPU used on the server's CPUs by anything but the server (and the database) during the measured
   * part, in cores: other processes on a shared machine. Near 0 for a clean run; NaN when not pinned.
   */
  otherCpu: number;
}

/** CPU seconds used so far by all processes with this command name (e.g. every PostgreSQL backend). */
function commandCpuSeconds(name: string): number {
  let total = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === name) total += cpuSeconds(Number(pid)) || 0;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

type Usage = Pick<Measurement, 'serverCpu' | 'dbCpu' | 'otherCpu'>;

/** Samples CPU use of the server, the database and the server's CPUs; `end()` gives shares over the interval. */
function cpuMeter(target: Target): { end(): Usage } {
  const cpus = settings.taskset ? cpuList(settings.serverCpus) : [];
  const db = () => (target.database ? commandCpuSeconds(target.database) : 0);
  const server = cpuSeconds(target.pid);
  const busy = cpus.length ? busySeconds(cpus) : Number.NaN;
  const database = db();
  const started = performance.now();
  return {
    end() {
      const seconds = (performance.now() - started) / 1000;
      const serverCpu = (cpuSeconds(target.pid) - server) / seconds;
      const dbCpu = (db() - database) / seconds;
      const busyCpu = (busySeconds(cpus) - busy) / seconds;
      // The database is not pinned: count all of it against the server's CPUs, so "other" is a lower bound.
      return { serverCpu, dbCpu, otherCpu: cpus.length ? Math.max(0, busyCpu - serverCpu - dbCpu) : Number.NaN };
    },
  };
}

export function writeRequests(file: string, requests: Iterable<Request>): string {
  const lines: string[] = [];
  for (const { method, path, body, headers = {} } of requests) {
    const fields = [method, path, body === undefined ? '' : JSON.stringify(body)];
    for (const [name, value] of Object.entries(headers)) fields.push(`${name}: ${value}`);
    lines.push(fields.join('\t'));
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

export interface Target {
  url: string;
  pid: number;
  authorization?: string;
  /** Command name of the database server's processes, whose CPU is reported apart ("postgres"). */
  database?: string;
}

function lastJsonLine<T>(out: string): T {
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (!line) throw new Error(`load generator printed no result:\n${out}`);
  return JSON.parse(line) as T;
}

async function wrk(target: Target, file: string, seconds: number, connections: number): Promise<LoadResult> {
  const env = { ...process.env, BENCH_REQUESTS: file, BENCH_AUTHORIZATION: target.authorization ?? '' };
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '30s', '-s', join(ROOT, 'bench', 'wrk.lua'), target.url];
  const result = lastJsonLine<LoadResult>(await run('wrk', args, { env, cpus: settings.loadCpus }));
  return { ...result, rps: result.requests / result.seconds };
}

/**
 * Drives `target` for the configured duration with `requestsFile` (cycled), after a warm-up with
 * `warmupFile` (default: the same file), from a separate process pinned to the load CPUs.
 */
export async function drive(
  target: Target,
  requestsFile: string,
  options: { warmupFile?: string; connections?: number } = {},
): Promise<Measurement> {
  const { durationSeconds, warmupSeconds } = settings;
  const { warmupFile, connections = settings.connections } = options;
  if (settings.tool === 'wrk') {
    if (warmupSeconds > 0) await wrk(target, warmupFile ?? requestsFile, warmupSeconds, connections);
    const meter = cpuMeter(target);
    const result = await wrk(target, requestsFile, durationSeconds, connections);
    return { ...result, ...meter.end(), rssMb: memory(target.pid).rssMb };
  }
  const spec: LoadSpec = {
    url: target.url,
    connections,
    durationSeconds,
    warmupSeconds,
    headers: { accept: 'application/json', 'content-type': 'application/json', ...(target.authorization ? { authorization: target.authorization } : {}) },
    requestsFile,
    warmupRequestsFile: warmupFile,
  };
  const specFile = `${requestsFile}.spec.json`;
  writeFileSync(specFile, JSON.stringify(spec));
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  let meter = cpuMeter(target);
  const spawned = start(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'load.ts'), specFile], { env, cpus: settings.loadCpus });
  // load.ts prints "warmed" when the warm-up ends: CPU is counted from there.
  spawned.child.stdout?.on('data', (chunk: string) => {
    if (chunk.includes('warmed')) meter = cpuMeter(target);
  });
  const code = await spawned.exited;
  const cpu = meter.end();
  if (code !== 0) throw new Error(`load generator exited with ${code}\n${spawned.stderr()}`);
  return { ...lastJsonLine<LoadResult>(spawned.stdout()), ...cpu, rssMb: memory(target.pid).rssMb };
}

// ---------------------------------------------------------------- formatting

export function table(header: string[], rows: Array<Array<string | number>>, align: Array<'l' | 'r'> = []): string {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, i) => Math.max(3, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, i) => (align[i] === 'r' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (align[i] === 'r' ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(header), rule, ...cells.slice(1).map(line)].join('\n');
}

export const fixed = (value: number, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
export const thousands = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a');
export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : (sorted[Math.floor((sorted.length - 1) / 2)] as number);
};
