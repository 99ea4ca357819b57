// Profiles the service under the GET /v2/users/{id} load and prints the top self-time functions.
//
//   node --import tsx bench/profile.ts                      # SQLite, 10,000 users, BENCH_DURATION (default 10 s)
//   node --import tsx bench/profile.ts some.cpuprofile      # only summarise an existing profile
//
// The server runs as `node --cpu-prof dist/main.js serve`, pinned like in `npm run bench`; only the samples
// taken while the load ran are counted. BENCH_PROFILE_SCENARIO picks another scenario (get|post|post-webhook|list200):
// post-webhook creates while a subscription to users.created (signed, with the resource) points at a receiver in
// this process; WEBHOOK_DELIVERY=false in the environment profiles the outbox writes without the delivery.
// BENCH_PROFILE_KEEP=dir keeps the .cpuprofile there (open it in Chrome DevTools or speedscope).
import { once } from 'node:events';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { userBodies } from './data.js';
import {
  authorization,
  build,
  call,
  cleanup,
  createKey,
  createStore,
  drive,
  fixed,
  importUsers,
  progress,
  settings,
  startServer,
  table,
  thousands,
  workDir,
  writeRequests,
  type Request,
} from './harness.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where a function comes from: a package, a file of the service, Node.js internals or V8 pseudo-frames. */
function origin(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return 'node:internal';
  const own = /\/(dist|src)\/(.+)$/.exec(url);
  return own ? `service ${own[2]}` : url;
}

/** Top self-time functions and origins of a .cpuprofile, counting only samples within [fromUs, toUs] when given. */
export function summarise(profile: CpuProfile, window?: { fromUs: number; toUs: number }, top = 25): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  let time = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    time += delta;
    if (window && (time < window.fromUs || time > window.toUs)) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
    total += delta;
  }
  const describe = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = origin(url, functionName || '(anonymous)');
    const file = url ? `${url.replace(/^.*?\/(node_modules|dist|src)\//, '$1/').replace(/^file:\/\//, '')}:${lineNumber + 1}` : '';
    return { key: `${functionName || '(anonymous)'}\t${file}`, where };
  };
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);

  const functions = new Map<string, number>();
  const origins = new Map<string, number>();
  /** Inclusive time of the service's own functions: samples with the function anywhere on the stack. */
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const { key, where } = describe(byId.get(id)!);
    functions.set(key, (functions.get(key) ?? 0) + us);
    origins.set(where, (origins.get(where) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = describe(byId.get(at)!);
      if (frame.where.startsWith('service ') && !seen.has(frame.key)) {
        seen.add(frame.key);
        inclusive.set(frame.key, (inclusive.get(frame.key) ?? 0) + us);
      }
    }
  }
  const pct = (us: number) => `${fixed((us / total) * 100, 1)}%`;
  const sorted = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  return [
    `${fixed(total / 1e6, 1)} s of samples${window ? ' during the load' : ''}`,
    '',
    table(['self', 'function', 'where'], sorted(functions).map(([key, us]) => {
      const [name = '', file = ''] = key.split('\t');
      return [pct(us), name, file];
    }), ['r', 'l', 'l']),
    '',
    table(['self', 'origin'], sorted(origins).map(([where, us]) => [pct(us), where]), ['r', 'l']),
    '',
    table(['total', 'service function (with what it calls)', 'where'], sorted(inclusive).slice(0, 15).map(([key, us]) => {
      const [name = '', file = ''] = key.split('\t');
      return [pct(us), name, file];
    }), ['r', 'l', 'l']),
  ].join('\n');
}

/** A subscription to users.created at a receiver in this process that answers 204 (closed with the process). */
async function subscribe(url: string, auth: string): Promise<void> {
  const receiver = createServer((req, res) => req.resume().on('end', () => res.writeHead(204).end()));
  receiver.listen(0, '127.0.0.1').unref();
  await once(receiver, 'listening');
  const hooks = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  const body = JSON.stringify({ events: ['users.created'], name: 'profile', url: hooks, secret: 'profile-webhook-secret-0123456789', config: { include_resource: true } });
  const created = await call(`${url}/v2/webhooks`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/json' }, body });
  if (created.status !== 201) throw new Error(`webhook subscription: ${created.status} ${created.body}`);
}

async function profileService(): Promise<void> {
  const scenario = process.env.BENCH_PROFILE_SCENARIO ?? 'get';
  await build();
  const dir = workDir();
  const store = await createStore('sqlite');
  const key = await createKey(store, 'profile');
  const seedFile = join(dir, 'seed.ndjson');
  const next = userBodies(1, 5000);
  writeFileSync(seedFile, `${Array.from({ length: 10_000 }, () => JSON.stringify(next())).join('\n')}\n`);
  await importUsers(store, key.client_id, seedFile);

  const profileDir = join(dir, 'profile');
  const server = await startServer(store, { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
  let window: { fromUs: number; toUs: number };
  try {
    const page = JSON.parse((await call(`${server.url}/v2/users?limit=200`, { headers: { authorization: authorization(key) } })).body) as {
      results: Array<{ id: string }>;
    };
    const ids = page.results.map((u) => u.id);
    if (scenario === 'post-webhook') await subscribe(server.url, authorization(key));
    const post = userBodies(9, 1000);
    const requests: Request[] =
      scenario === 'post' || scenario === 'post-webhook'
        ? Array.from({ length: 5000 }, () => ({ method: 'POST', path: '/v2/users', body: post() }))
        : scenario === 'list200'
          ? [{ method: 'GET', path: '/v2/users?limit=200' }]
          : ids.map((id) => ({ method: 'GET', path: `/v2/users/${id}` }));
    const file = writeRequests(join(dir, 'requests.tsv'), requests);
    progress(`profiling ${scenario} for ${settings.durationSeconds} s`);
    // Profile timestamps are microseconds of the monotonic clock, as is process.hrtime.
    const fromUs = Number(process.hrtime.bigint() / 1000n) + settings.warmupSeconds * 1e6;
    const result = await drive({ url: server.url, pid: server.pid, authorization: authorization(key) }, file);
    window = { fromUs, toUs: Number(process.hrtime.bigint() / 1000n) };
    progress(`${thousands(result.rps)} req/s, p50 ${fixed(result.p50)} ms, p99 ${fixed(result.p99)} ms, server CPU ${fixed(result.serverCpu * 100, 0)}% (slowed by the profiler)`);
  } finally {
    await server.stop();
  }
  const [name] = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
  if (!name) throw new Error('the server wrote no .cpuprofile');
  if (process.env.BENCH_PROFILE_KEEP) copyFileSync(join(profileDir, name), join(process.env.BENCH_PROFILE_KEEP, `${scenario}-${name}`));
  process.stdout.write(`${summarise(JSON.parse(readFileSync(join(profileDir, name), 'utf8')) as CpuProfile, window)}\n`);
}

try {
  const given = process.argv[2];
  if (given) process.stdout.write(`${summarise(JSON.parse(readFileSync(given, 'utf8')) as CpuProfile)}\n`);
  else await profileService();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
} finally {
  await cleanup();
}
