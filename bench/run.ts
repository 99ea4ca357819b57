// npm run bench: the service against the bare node:http ceiling, on each store, in one table.
//
// For each store (SQLite in a fresh temporary directory; PostgreSQL in a fresh schema when reachable):
// create API keys and seed users with the service's own CLI (`keys create`, `import`), start
// `node dist/main.js serve` pinned to CPU 0, and drive each scenario from a separate load-generator
// process pinned to CPU 1 (wrk when installed, else autocannon in bench/load.ts). The ceiling is
// bench/ceiling.ts answering every request with a real User JSON fetched from the service, pinned and
// driven the same way, measured at the start and at the end; ratios are to the faster of the two.
// Between the two, bench/essential.ts serves GET /v2/users/{id} with the service's own key check, SQLite
// lookup, decryption and JSON behind bare node:http (no framework): what the work itself leaves of the ceiling.
// A run disturbed by other processes on the server's CPU (a shared machine) is retried and flagged.
//
// Environment:
//   BENCH_DURATION (seconds per scenario, 5)   BENCH_WARMUP (seconds, 1)   BENCH_CONNECTIONS (10)
//   BENCH_STORES (sqlite,postgres)             BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/test)
//   BENCH_SCALE=1: also a fresh store of BENCH_SCALE_USERS (1,000,000) users: timed import, cold start,
//     memory, and the lookups and lists at both sizes, at full load and with one connection
//   BENCH_SEED_USERS (10000)   BENCH_TOOL (auto|autocannon|wrk)   BENCH_OUTPUT (write all results as JSON)
//   BENCH_EXPORT_USERS (100000): users in the CSV export scenario (bench/export.ts)
//   BENCH_RETRIES (2)   BENCH_MAX_OTHER_CPU (0.1 cores)   BENCH_SERVER_CPUS (0)   BENCH_LOAD_CPUS (1)
//   BENCH_SERVER_NODE_ARGS (extra Node.js flags for the server, for experiments)
//   BENCH_WEBHOOK_ROUNDS (5): interleaved rounds of plain and subscribed creates (single rounds scatter by ±25%)
//   BENCH_ONLY=webhooks: only the ceiling and those rounds (a quick A/B of the webhook cost);
//     BENCH_ONLY=link: only the ceiling and the Link and accounts scenarios
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWriteStream, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { externalIdFor, patchBodies, prng, userBodies } from './data.js';
import { exportTable, measureExport, type ExportResult } from './export.js';
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
  machine,
  median,
  memory,
  postgresReachable,
  progress,
  ROOT,
  settings,
  startCeiling,
  startEssential,
  startServer,
  table,
  thousands,
  workDir,
  writeRequests,
  type ApiKey,
  type ImportResult,
  type Measurement,
  type Memory,
  type Request,
  type Target,
  type Server,
  type Store,
  type StoreKind,
} from './harness.js';

interface Row {
  store: StoreKind | 'ceiling' | 'essential';
  users: number;
  scenario: string;
  result: Measurement;
  /** Whether the server alone should keep its CPU busy (no disk or database waits): ceiling and SQLite reads. */
  cpuBound: boolean;
}

interface SizeReport {
  store: StoreKind;
  users: number;
  import: ImportResult;
  coldStartMs: number[];
  /** Right after start, before any load. */
  idle: Memory;
  /** After the read scenarios. */
  memory: Memory;
}

const rows: Row[] = [];
const sizes: SizeReport[] = [];
const exports: ExportResult[] = [];
const notes: string[] = [];
/** The median share of plain create throughput that creates with a webhook subscription kept, per store and variant. */
const subscriptionShares: Array<{ store: StoreKind; variant: string; share: number }> = [];

// ---------------------------------------------------------------- seed data

interface Seed {
  file: string;
  users: number;
  /** A random sample of the external ids the seed actually uses. */
  externalIds: string[];
}

/** Writes `users` NDJSON create bodies; external ids are shared by about two users each. */
async function writeSeed(dir: string, users: number, seed: number): Promise<Seed> {
  const file = join(dir, `users-${users}-${seed}.ndjson`);
  const pool = Math.max(1, Math.floor(users / 2));
  const used = new Uint8Array(pool);
  const next = userBodies(seed, pool);
  const out = createWriteStream(file);
  let chunk: string[] = [];
  for (let i = 0; i < users; i++) {
    const body = next();
    if (body.external_id !== undefined) used[Number(body.external_id.slice(4))] = 1;
    chunk.push(JSON.stringify(body));
    if (chunk.length === 2000 || i === users - 1) {
      if (!out.write(`${chunk.join('\n')}\n`)) await once(out, 'drain');
      chunk = [];
    }
  }
  out.end();
  await once(out, 'finish');
  const random = prng(seed + 1);
  const externalIds: string[] = [];
  for (let tries = 0; externalIds.length < Math.min(3000, pool) && tries < pool * 4; tries++) {
    const n = Math.floor(random() * pool);
    if (used[n]) externalIds.push(externalIdFor(n));
  }
  return { file, users, externalIds };
}

// ---------------------------------------------------------------- talking to the service

async function getJson<T>(server: Server, key: ApiKey, pathOrUrl: string): Promise<T> {
  const url = pathOrUrl.startsWith('http') ? pathOrUrl : `${server.url}${pathOrUrl}`;
  const reply = await call(url, { headers: { authorization: authorization(key), accept: 'application/json' } });
  if (reply.status !== 200) throw new Error(`GET ${url}: ${reply.status} ${reply.body.slice(0, 300)}`);
  return JSON.parse(reply.body) as T;
}

interface Page {
  next: string | null;
  results: Array<{ id: string }>;
}

/** User ids spread over the whole table, found through the API: the users of sampled external ids. */
async function sampleIds(server: Server, key: ApiKey, externalIds: string[]): Promise<string[]> {
  const pages = await eightAtATime(externalIds, (externalId) =>
    getJson<Page>(server, key, `/v2/users?limit=200&external_id=${encodeURIComponent(externalId)}`),
  );
  return shuffle(
    pages.flatMap((page) => page.results.map((user) => user.id)),
    7,
  );
}

/** `work` for each item, eight requests in flight at a time; the results in the items' order. */
async function eightAtATime<T, R>(items: readonly T[], work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  return results;
}

/** Every user id of a client, by walking the pages. */
async function allIds(server: Server, key: ApiKey): Promise<string[]> {
  const ids: string[] = [];
  let url: string | null = '/v2/users?limit=200';
  while (url) {
    const page: Page = await getJson<Page>(server, key, url);
    for (const user of page.results) ids.push(user.id);
    url = page.next;
  }
  return shuffle(ids, 11);
}

function shuffle<T>(list: T[], seed: number): T[] {
  const random = prng(seed);
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  return list;
}

/** Starts the server `times` times on the existing store, timing each start; the last one keeps running. */
async function coldStarts(store: Store, times: number): Promise<{ server: Server; samples: number[] }> {
  const samples: number[] = [];
  for (;;) {
    const server = await startServer(store);
    samples.push(server.coldStartMs);
    if (samples.length === times) return { server, samples };
    await server.stop();
  }
}

// ---------------------------------------------------------------- scenarios

interface Scenario {
  name: string;
  requests: (ids: string[], externalIds: string[]) => Request[];
  /** A read that should keep a SQLite server's CPU busy (the READS are). */
  read?: boolean;
}

const READS: Scenario[] = [
  { name: 'GET /v2/users/{id}', requests: (ids) => ids.map((id) => ({ method: 'GET', path: `/v2/users/${id}` })) },
  { name: 'GET /v2/users?limit=10', requests: () => [{ method: 'GET', path: '/v2/users?limit=10' }] },
  { name: 'GET /v2/users?limit=200', requests: () => [{ method: 'GET', path: '/v2/users?limit=200' }] },
  {
    name: 'GET /v2/users?external_id=…',
    requests: (_ids, externalIds) => externalIds.map((x) => ({ method: 'GET', path: `/v2/users?external_id=${encodeURIComponent(x)}` })),
  },
  {
    name: 'POST /v2/user-tokens',
    requests: (ids) => ids.map((id) => ({ method: 'POST', path: '/v2/user-tokens', body: { user: id } })),
  },
];
/** The scenarios compared at both sizes. */
const SCALE_READS = READS.filter((s) => /\{id\}|limit=200|external_id/.test(s.name));

const PATCH: Scenario = {
  name: 'PATCH /v2/users/{id}',
  requests: (ids) => {
    const next = patchBodies(3);
    return ids.slice(0, 5000).map((id) => ({ method: 'PATCH', path: `/v2/users/${id}`, body: next() }));
  },
};
const POST: Scenario = {
  name: 'POST /v2/users',
  requests: () => {
    const next = userBodies(5, 100_000);
    return Array.from({ length: 5000 }, () => ({ method: 'POST', path: '/v2/users', body: next() }));
  },
};

/**
 * Why a run is not a clean measurement of the server: other processes took the server's CPU, or a
 * CPU-bound server was left idle (the load generator starved on a busy machine).
 */
function disturbance(m: Measurement, cpuBound: boolean): string | undefined {
  if (m.otherCpu > settings.maxOtherCpu) return `other processes used ${fixed(m.otherCpu * 100, 0)}% of the server's CPU`;
  if (cpuBound && m.serverCpu < 0.9) return `the server was busy only ${fixed(m.serverCpu * 100, 0)}% of the time`;
  return undefined;
}

/** Whether the load generator itself was the bottleneck (autocannon on one core): retrying cannot help. */
const loaderBound = (m: Measurement) => (m.loaderCpu ?? 0) > 0.9;

/**
 * Drives a scenario; when the run was disturbed (a shared machine), tries again up to BENCH_RETRIES
 * times and keeps the fastest run (interference only ever slows a run down).
 */
async function driveClean(label: string, cpuBound: boolean, run: () => Promise<Measurement>): Promise<Measurement> {
  let best = await run();
  for (let attempt = 1; attempt <= settings.retries; attempt++) {
    const why = disturbance(best, cpuBound);
    if (!why || loaderBound(best)) break;
    progress(`${label}: ${why}; again (${attempt}/${settings.retries})`);
    const again = await run();
    if (again.rps > best.rps) best = again;
  }
  return best;
}

/** The service as a load target, authenticated with `key`; on PostgreSQL the database's CPU is counted too. */
const serviceTarget = (server: Server, key: ApiKey, store: StoreKind): Target => ({
  url: server.url,
  pid: server.pid,
  authorization: authorization(key),
  database: store === 'postgres' ? 'postgres' : undefined,
});

/** The name of a scenario's row when it runs with one connection (latency without queueing). */
const single = (name: string) => `${name} (1 connection)`;

async function measure(
  server: Server,
  key: ApiKey,
  store: StoreKind,
  users: number,
  dir: string,
  scenario: Scenario,
  data: { ids: string[]; externalIds: string[] },
  connections = settings.connections,
): Promise<Measurement> {
  const name = connections === settings.connections ? scenario.name : single(scenario.name);
  const label = `${store} ${thousands(users)} users: ${name}`;
  progress(label);
  const file = writeRequests(join(dir, `${store}-${users}-${rows.length}.tsv`), scenario.requests(data.ids, data.externalIds));
  const target = serviceTarget(server, key, store);
  // One connection cannot keep the server busy: only full-load reads on SQLite are expected to.
  const cpuBound = store === 'sqlite' && (scenario.read ?? READS.includes(scenario)) && connections === settings.connections;
  const result = await driveClean(label, cpuBound, () => drive(target, file, { connections }));
  rows.push({ store, users, scenario: name, result, cpuBound });
  return result;
}

/**
 * POST /v2/users as careful clients send it, with an Idempotency-Key; every key is used once (a repeated
 * key would be a cheap replay), so the warm-up gets its own keys and the run is not retried.
 */
async function measureKeyedCreates(server: Server, key: ApiKey, store: StoreKind, users: number, dir: string, plainRps: number): Promise<void> {
  const name = `${POST.name} (Idempotency-Key)`;
  progress(`${store} ${thousands(users)} users: ${name}`);
  const next = userBodies(7, 100_000);
  let serial = 0;
  const creates = (seconds: number): Request[] =>
    Array.from({ length: Math.ceil(plainRps * 1.5 * seconds) + 200 }, () => ({
      method: 'POST',
      path: '/v2/users',
      body: next(),
      headers: { 'Idempotency-Key': `bench-${++serial}` },
    }));
  const warmupFile = writeRequests(join(dir, `${store}-keyed-warmup.tsv`), creates(settings.warmupSeconds));
  const runFile = writeRequests(join(dir, `${store}-keyed.tsv`), creates(settings.durationSeconds));
  const target = serviceTarget(server, key, store);
  rows.push({ store, users, scenario: name, result: await drive(target, runFile, { warmupFile }), cpuBound: false });
}

/**
 * POST /v2/users while the client has an active webhook subscription to users.created (signed), with the resource
 * (`include_resource`) and without it: each create also appends its event in the same transaction, and the server
 * fans the events out and delivers them in the background to a receiver in this process, all on the server's CPU.
 * Measured in BENCH_WEBHOOK_ROUNDS interleaved rounds of plain creates, creates with a subscription with the
 * resource and with one without, on the same server and in an order that turns each round, so that the shares
 * compare like with like on a noisy host;
 * the deliveries of each round are drained before the next measurement. Each row shows its median round.
 */
async function measureSubscribedCreates(server: Server, key: ApiKey, store: StoreKind, users: number, dir: string): Promise<void> {
  const variants = [
    { name: `${POST.name} (webhook subscription)`, label: 'with the resource', includeResource: true },
    { name: `${POST.name} (webhook subscription, no resource)`, label: 'without', includeResource: false },
  ];
  let received = 0;
  const receiver = createServer((req, res) => {
    req.resume().on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
  const headers = { authorization: authorization(key), 'content-type': 'application/json' };
  const target = serviceTarget(server, key, store);
  type Subscribed = { result: Measurement; delivered: number; drainSeconds: number };
  const rounds: Array<{ plain: Measurement; subscribed: Subscribed[] }> = [];
  const subscribed = async (round: number, variant: (typeof variants)[number]): Promise<Subscribed> => {
    const body = JSON.stringify({ events: ['users.created'], name: 'bench', url, secret: 'bench-webhook-secret-0123456789', config: { include_resource: variant.includeResource } });
    const created = await call(`${server.url}/v2/webhooks`, { method: 'POST', headers, body });
    if (created.status !== 201) throw new Error(`webhook subscription: ${created.status} ${created.body}`);
    const { id } = JSON.parse(created.body) as { id: string };
    try {
      const before = received;
      const file = writeRequests(join(dir, `${store}-hooks-${variant.includeResource ? 'resource' : 'bare'}-${round}.tsv`), POST.requests([], []));
      const result = await driveClean(`${variant.name}, round ${round}`, false, () => drive(target, file));
      const delivered = received - before;
      // Drain: until nothing more arrives for two seconds (at most two minutes).
      const started = Date.now();
      for (let last = -1; last !== received && Date.now() - started < 120_000; ) {
        last = received;
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
      return { result, delivered, drainSeconds: Math.max(0, (Date.now() - started) / 1000 - 2) };
    } finally {
      await call(`${server.url}/v2/webhooks/${id}`, { method: 'DELETE', headers });
    }
  };
  const plainCreates = (round: number) =>
    driveClean(`${POST.name}, round ${round}: plain`, false, () => drive(target, writeRequests(join(dir, `${store}-hooks-plain-${round}.tsv`), POST.requests([], []))));
  try {
    for (let round = 1; round <= settings.webhookRounds; round++) {
      progress(`${store} ${thousands(users)} users: ${variants[0]!.name}, round ${round} of ${settings.webhookRounds}`);
      // Each round starts one measurement later (plain, with, without; then with, without, plain; ...): a
      // measurement runs on a table the ones before it grew, after the deletes of the subscription before it, so a
      // fixed order would favour one of them in every round.
      const order = [-1, ...variants.keys()];
      const turn = (round - 1) % order.length;
      let plain: Measurement | undefined;
      const results: Subscribed[] = [];
      for (const v of [...order.slice(turn), ...order.slice(0, turn)]) {
        if (v === -1) plain = await plainCreates(round);
        else results[v] = await subscribed(round, variants[v]!);
      }
      rounds.push({ plain: plain!, subscribed: results });
    }
  } finally {
    receiver.close();
  }
  variants.forEach((variant, v) => {
    const share = (r: (typeof rounds)[number]) => r.subscribed[v]!.result.rps / r.plain.rps;
    // Of an even number of rounds, the lower of the two middle ones: a verdict must not lean on the kinder one.
    const median = [...rounds].sort((a, b) => share(a) - share(b))[Math.floor((rounds.length - 1) / 2)]!;
    // The server's CPU per create beside it: steadier than throughput when the creates wait on fsync more than on CPU.
    const cpuRatio = (r: (typeof rounds)[number]) => cpuPerRequest(r.subscribed[v]!.result) / cpuPerRequest(r.plain);
    const cpuMedian = [...rounds].map(cpuRatio).sort((a, b) => b - a)[Math.floor((rounds.length - 1) / 2)]!;
    rows.push({ store, users, scenario: variant.name, result: median.subscribed[v]!.result, cpuBound: false });
    subscriptionShares.push({ store, variant: variant.label, share: share(median) });
    notes.push(
      `${store}: webhook subscription ${variant.label}, ${rounds.length} interleaved rounds (plain creates/s → with the subscription, share; ` +
        `server CPU per create; events delivered while the creates ran; drain after): ` +
        rounds
          .map((r) => {
            const s = r.subscribed[v]!;
            const cpu = `${fixed(cpuPerRequest(r.plain), 0)} → ${fixed(cpuPerRequest(s.result), 0)} µs CPU`;
            return `${thousands(Math.round(r.plain.rps))} → ${thousands(Math.round(s.result.rps))} (${fixed(share(r) * 100, 0)}%; ${cpu}; ${thousands(s.delivered)} delivered; ${fixed(s.drainSeconds, 0)} s)`;
          })
          .join(', ') +
        `; median share ${fixed(share(median) * 100, 0)}% of plain create throughput; median server CPU per create ${fixed(cpuMedian * 100, 0)}% of a plain one's`,
    );
  });
}

/** The server's CPU time per request of a measurement, in µs. */
const cpuPerRequest = (m: Measurement) => (m.serverCpu * 1e6) / m.rps;

/** User tokens for `ids`, minted through the API (valid for an hour: longer than any run). */
async function mintTokens(server: Server, key: ApiKey, ids: string[]): Promise<string[]> {
  return eightAtATime(ids, async (user) => {
    const reply = await call(`${server.url}/v2/user-tokens`, {
      method: 'POST',
      headers: { authorization: authorization(key), 'content-type': 'application/json' },
      body: JSON.stringify({ user }),
    });
    if (reply.status !== 200) throw new Error(`POST /v2/user-tokens: ${reply.status} ${reply.body.slice(0, 300)}`);
    return (JSON.parse(reply.body) as { user_token: string }).user_token;
  });
}

/** Users the Link scenarios act as: each request carries one of their tokens instead of the API key. */
const LINK_USERS = 2000;
/** Items each Link user starts connecting: LINK_USERS × LINK_ITEMS distinct accounts, each created once. */
const LINK_ITEMS = 20;
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/**
 * The Link side and the accounts it records: GET /v2/link/user (the login screen's pre-fill) and POST
 * /v2/link/accounts (a new account per request: every user and item pair is used once, so the run is not
 * retried), each with a user token; then GET /v2/accounts?user=… with the API key over the users that now have
 * accounts.
 */
async function measureLink(server: Server, key: ApiKey, store: StoreKind, users: number, dir: string, ids: string[]): Promise<void> {
  const linkIds = ids.slice(0, LINK_USERS);
  progress(`${store}: minting ${thousands(linkIds.length)} user tokens`);
  const tokens = await mintTokens(server, key, linkIds);
  const prefill: Scenario = { name: 'GET /v2/link/user (user token)', read: true, requests: () => tokens.map((t) => ({ method: 'GET', path: '/v2/link/user', headers: bearer(t) })) };
  await measure(server, key, store, users, dir, prefill, { ids: [], externalIds: [] });

  const name = 'POST /v2/link/accounts (user token)';
  progress(`${store} ${thousands(users)} users: ${name}`);
  const attempts: Request[] = [];
  for (let item = 0; item < LINK_ITEMS; item++) {
    for (const token of tokens) {
      attempts.push({ method: 'POST', path: '/v2/link/accounts', body: { item: `item_${String(item).padStart(9, '0')}`, employers: ['Bench Employer'] }, headers: bearer(token) });
    }
  }
  const split = Math.min(Math.floor(attempts.length / 4), 5000);
  const warmupFile = writeRequests(join(dir, `${store}-link-warmup.tsv`), attempts.slice(0, split));
  const runFile = writeRequests(join(dir, `${store}-link.tsv`), attempts.slice(split));
  const result = await drive(serviceTarget(server, key, store), runFile, { warmupFile });
  rows.push({ store, users, scenario: name, result, cpuBound: false });
  if (result.requests > attempts.length - split) notes.push(`${store}: ${name} ran out of new user and item pairs: the last ${thousands(result.requests - (attempts.length - split))} requests found their account (200)`);

  const byUser: Scenario = {
    name: 'GET /v2/accounts?user=…',
    read: true,
    requests: () => linkIds.map((id) => ({ method: 'GET', path: `/v2/accounts?user=${id}` })),
  };
  await measure(server, key, store, users, dir, byUser, { ids: [], externalIds: [] });
}

/** The reads compared across table sizes, at full load and with one connection. */
async function measureScaleReads(server: Server, key: ApiKey, store: StoreKind, users: number, dir: string, data: { ids: string[]; externalIds: string[] }): Promise<void> {
  for (const scenario of SCALE_READS) await measure(server, key, store, users, dir, scenario, data, 1);
}

// ---------------------------------------------------------------- the ceiling

let ceilingBodyFile: string | undefined;

async function measureCeiling(dir: string, label: string): Promise<void> {
  if (!ceilingBodyFile) return;
  progress(`ceiling: ${label}`);
  const ceiling = await startCeiling(ceilingBodyFile);
  try {
    const file = writeRequests(join(dir, `ceiling-${rows.length}.tsv`), [{ method: 'GET', path: '/v2/users/canned' }]);
    const result = await driveClean(`ceiling (${label})`, true, () => drive({ url: ceiling.url, pid: ceiling.pid }, file));
    rows.push({ store: 'ceiling', users: 0, scenario: `node:http canned User (${label})`, result, cpuBound: true });
  } finally {
    await ceiling.stop();
  }
}

const ESSENTIAL = 'node:http + the GET by id work, no framework';

/**
 * The GET by id's own work (the service's key check, SQLite lookup, PII decryption and JSON) behind a
 * bare node:http server: what is left of the ceiling before any framework, validation or hook.
 */
async function measureEssential(store: Store, key: ApiKey, dir: string, ids: string[]): Promise<void> {
  progress('essential: GET /v2/users/{id} work behind bare node:http');
  const server = await startEssential(store);
  try {
    const file = writeRequests(join(dir, `essential-${rows.length}.tsv`), READS[0]!.requests(ids, []));
    const target = { url: server.url, pid: server.pid, authorization: authorization(key) };
    const result = await driveClean('essential', true, () => drive(target, file));
    rows.push({ store: 'essential', users: settings.seedUsers, scenario: ESSENTIAL, result, cpuBound: true });
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------- one store

async function benchStore(kind: StoreKind, dir: string, seed: Seed): Promise<void> {
  if (kind === 'postgres' && !(await postgresReachable())) {
    const note = `PostgreSQL not reachable at ${settings.postgresUrl}: skipped`;
    progress(note);
    notes.push(note);
    return;
  }
  const store = await createStore(kind);
  progress(`${kind}: store at ${store.where}`);
  const key = await createKey(store, 'bench');
  const deleteKey = await createKey(store, 'bench-delete');
  progress(`${kind}: importing ${thousands(seed.users)} users`);
  const imported = await importUsers(store, key.client_id, seed.file);
  if (imported.imported !== seed.users) throw new Error(`import: ${JSON.stringify(imported)}`);

  const { server, samples } = await coldStarts(store, 3);
  const idle = memory(server.pid);
  try {
    const ids = await sampleIds(server, key, seed.externalIds);
    progress(`${kind}: ${ids.length} sampled user ids`);
    if (!ceilingBodyFile) {
      ceilingBodyFile = join(dir, 'ceiling-user.json');
      writeFileSync(ceilingBodyFile, (await call(`${server.url}/v2/users/${ids[0]}`, { headers: { authorization: authorization(key) } })).body);
      await measureCeiling(dir, 'first');
    }

    const data = { ids, externalIds: seed.externalIds };
    if (settings.only === 'webhooks') {
      await measureSubscribedCreates(server, key, kind, seed.users, dir);
      return;
    }
    if (settings.only === 'link') {
      await measureLink(server, key, kind, seed.users, dir, ids);
      return;
    }
    const measured = new Map<string, Measurement>();
    for (const scenario of READS) measured.set(scenario.name, await measure(server, key, kind, seed.users, dir, scenario, data));
    if (kind === 'sqlite') await measureEssential(store, key, dir, ids);
    await measureLink(server, key, kind, seed.users, dir, ids);
    if (settings.scale) await measureScaleReads(server, key, kind, seed.users, dir, data);
    sizes.push({ store: kind, users: seed.users, import: imported, coldStartMs: samples, idle, memory: memory(server.pid) });

    for (const scenario of [PATCH, POST]) measured.set(scenario.name, await measure(server, key, kind, seed.users, dir, scenario, data));
    await measureKeyedCreates(server, key, kind, seed.users, dir, measured.get(POST.name)!.rps);
    await measureSubscribedCreates(server, key, kind, seed.users, dir);

    // DELETE needs a fresh user per request: import enough for the run into another client, so the
    // other scenarios' tables are untouched, and hand each id out once.
    const fastest = Math.max(...[...measured.values()].map((m) => m.rps));
    const forWarmup = Math.ceil(fastest * 1.5 * settings.warmupSeconds) + 200;
    const forRun = Math.ceil(fastest * 1.5 * settings.durationSeconds) + 200;
    progress(`${kind}: importing ${thousands(forWarmup + forRun)} users to delete`);
    const poolSeed = await writeSeed(dir, forWarmup + forRun, 13);
    await importUsers(store, deleteKey.client_id, poolSeed.file);
    const pool = await allIds(server, deleteKey);
    const deletes = (list: string[]): Request[] => list.map((id) => ({ method: 'DELETE', path: `/v2/users/${id}` }));
    progress(`${kind} ${seed.users} users: DELETE /v2/users/{id}`);
    const warmupFile = writeRequests(join(dir, `${kind}-delete-warmup.tsv`), deletes(pool.slice(0, forWarmup)));
    const runFile = writeRequests(join(dir, `${kind}-delete.tsv`), deletes(pool.slice(forWarmup)));
    const target = serviceTarget(server, deleteKey, kind);
    // Each id is deleted once, so this scenario is not retried.
    const result = await drive(target, runFile, { warmupFile });
    rows.push({ store: kind, users: seed.users, scenario: 'DELETE /v2/users/{id}', result, cpuBound: false });
  } finally {
    await server.stop();
    await store.drop();
  }
}

/** The same reads on a fresh store of `seed.users` users, plus import time, cold start and memory. */
async function scaleStore(kind: StoreKind, dir: string, seed: Seed): Promise<void> {
  if (kind === 'postgres' && !(await postgresReachable())) return;
  const store = await createStore(kind);
  const key = await createKey(store, 'bench-scale');
  progress(`${kind}: importing ${thousands(seed.users)} users (timed)`);
  const imported = await importUsers(store, key.client_id, seed.file);
  progress(`${kind}: imported ${thousands(imported.imported)} in ${fixed(imported.seconds, 1)} s`);
  if (imported.imported !== seed.users) throw new Error(`import: ${JSON.stringify(imported)}`);
  const { server, samples } = await coldStarts(store, 3);
  const idle = memory(server.pid);
  try {
    const data = { ids: await sampleIds(server, key, seed.externalIds), externalIds: seed.externalIds };
    for (const scenario of SCALE_READS) await measure(server, key, kind, seed.users, dir, scenario, data);
    await measureScaleReads(server, key, kind, seed.users, dir, data);
    sizes.push({ store: kind, users: seed.users, import: imported, coldStartMs: samples, idle, memory: memory(server.pid) });
  } finally {
    await server.stop();
    await store.drop();
  }
}

// ---------------------------------------------------------------- report

/** The service's revision: commit, and whether src/ had uncommitted changes when it was built. */
function revision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'package.json') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

function report(command: string, service: string): string {
  const ceilingRps = Math.max(...rows.filter((r) => r.store === 'ceiling').map((r) => r.result.rps));
  const out: string[] = [];
  const info = machine();
  out.push(`Machine: ${info.cpus}; ${info.memory}; Node.js ${info.node}; Linux ${info.kernel}; load average at the end ${info['load average']}`);
  out.push(`Service: ${service}`);
  out.push(
    `Command: ${command}  (load generator: ${settings.tool}; ${settings.connections} connections; ` +
      `${settings.durationSeconds} s per scenario after ${settings.warmupSeconds} s warm-up; ` +
      `${settings.taskset ? `server on CPU ${settings.serverCpus}, load on CPU ${settings.loadCpus} (taskset)` : 'not pinned'})`,
  );
  out.push('');
  out.push(
    table(
      ['store', 'users', 'scenario', 'req/s', 'p50 ms', 'p99 ms', 'vs ceiling', 'server CPU', 'others on its CPU', 'RSS MB', 'non-2xx'],
      rows.map(({ store, users, scenario, result: r, cpuBound }) => [
        store,
        users ? thousands(users) : '-',
        scenario,
        thousands(r.rps),
        fixed(r.p50),
        fixed(r.p99),
        `${fixed((r.rps / ceilingRps) * 100, 1)}%`,
        `${fixed(r.serverCpu * 100, 0)}%${r.dbCpu > 0 ? ` + db ${fixed(r.dbCpu * 100, 0)}%` : ''}`,
        `${fixed(r.otherCpu * 100, 0)}%${disturbance(r, cpuBound) ? ' (!)' : ''}`,
        fixed(r.rssMb, 0),
        r.non2xx + r.errors > 0 ? `${r.non2xx + r.errors} of ${thousands(r.requests)}` : '0',
      ]),
      ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  for (const r of rows) {
    const why = disturbance(r.result, r.cpuBound);
    if (why && loaderBound(r.result)) {
      out.push(`(!) ${r.store} ${r.scenario}: ${why} while ${settings.tool} used ${fixed(r.result.loaderCpu! * 100, 0)}% of its CPU: the load generator was the bottleneck, so this rate is too low (install wrk).`);
    } else if (why) {
      out.push(`(!) ${r.store} ${r.scenario}: ${why}, even after ${settings.retries} retries: a disturbed run, its numbers are low.`);
    }
  }
  out.push('');
  out.push(
    table(
      ['store', 'users', 'import s', 'import users/s', 'cold start ms (3 starts)', 'RSS MB idle', 'RSS MB after reads', 'peak RSS MB'],
      sizes.map((s) => [
        s.store,
        thousands(s.users),
        fixed(s.import.seconds, 1),
        thousands(s.import.imported / s.import.seconds),
        s.coldStartMs.map((ms) => fixed(ms, 0)).join(' / '),
        fixed(s.idle.rssMb, 1),
        fixed(s.memory.rssMb, 1),
        fixed(s.memory.peakMb, 1),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  if (exports.length > 0) out.push('', exportTable(exports));
  const targets = evaluate(ceilingRps);
  if (targets.length > 0) {
    out.push('');
    out.push(table(['target (SQLite)', 'measured', 'verdict'], targets, ['l', 'l', 'l']));
  }
  for (const note of notes) out.push(`Note: ${note}`);
  return out.join('\n');
}

/** The issue's targets, judged on the SQLite numbers of this run. */
function evaluate(ceilingRps: number): string[][] {
  const find = (users: number, scenario: string) =>
    rows.find((r) => r.store === 'sqlite' && r.users === users && r.scenario === scenario)?.result;
  const size = (users: number) => sizes.find((s) => s.store === 'sqlite' && s.users === users);
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const targets: string[][] = [];
  const ratio = (scenario: string, goal: number, store: Row['store'] = 'sqlite') => {
    const r = rows.find((row) => row.store === store && row.users === settings.seedUsers && row.scenario === scenario)?.result;
    if (r) targets.push([`${scenario} ≥ ${goal}% of ceiling`, `${fixed((r.rps / ceilingRps) * 100, 1)}% (${thousands(r.rps)} of ${thousands(ceilingRps)} req/s)`, verdict(r.rps / ceilingRps >= goal / 100)]);
  };
  // The speed issue's targets ("Speed, step two").
  ratio('GET /v2/users/{id}', 30);
  ratio(ESSENTIAL, 45, 'essential');
  ratio('GET /v2/users?limit=10', 10);
  ratio('GET /v2/users?limit=200', 1.2);
  ratio('POST /v2/users', 10);
  for (const name of SCALE_READS.flatMap((s) => [s.name, single(s.name)])) {
    const small = find(settings.seedUsers, name);
    const large = find(settings.scaleUsers, name);
    if (small && large) {
      targets.push([
        `${name}: p99 at ${thousands(settings.scaleUsers)} ≤ 1.3 × p99 at ${thousands(settings.seedUsers)}`,
        `${fixed(large.p99)} ms vs ${fixed(small.p99)} ms (${fixed(large.p99 / small.p99)}×)`,
        verdict(large.p99 <= 1.3 * small.p99),
      ]);
    }
  }
  // The webhooks issue's: a subscription costs at most 10% of create throughput.
  for (const { variant, share } of subscriptionShares.filter((s) => s.store === 'sqlite')) {
    targets.push([`POST /v2/users with a subscription (${variant}) ≥ 90% of plain creates`, `median ${fixed(share * 100, 0)}% of the same rounds' plain creates`, verdict(share >= 0.9)]);
  }
  const large = size(settings.scaleUsers);
  if (large) {
    targets.push([`RSS < 200 MB at ${thousands(large.users)} users`, `${fixed(large.memory.rssMb, 1)} MB (peak ${fixed(large.memory.peakMb, 1)} MB)`, verdict(large.memory.peakMb < 200)]);
    targets.push([`import of ${thousands(large.users)} users < 120 s`, `${fixed(large.import.seconds, 1)} s`, verdict(large.import.seconds < 120)]);
  }
  const starts = sizes.filter((s) => s.store === 'sqlite').flatMap((s) => s.coldStartMs);
  if (starts.length > 0) {
    targets.push(['cold start < 1 s', `median ${fixed(median(starts), 0)} ms, worst ${fixed(Math.max(...starts), 0)} ms`, verdict(Math.max(...starts) < 1000)]);
  }
  return targets;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const command = [
    ...Object.entries(process.env)
      .filter(([name]) => name.startsWith('BENCH_') && name !== 'BENCH_OUTPUT')
      .map(([name, value]) => `${name}=${value}`),
    'npm run bench',
  ].join(' ');
  const info = machine();
  progress(`${info.cpus}; ${info.memory}; Node.js ${info.node}; load average ${info['load average']}; tool ${settings.tool}`);
  const service = revision();
  await build();
  const dir = workDir();
  const seed = await writeSeed(dir, settings.seedUsers, 1);
  for (const kind of settings.stores) await benchStore(kind, dir, seed);
  if (settings.scale) {
    progress(`writing ${thousands(settings.scaleUsers)} users of NDJSON`);
    const large = await writeSeed(dir, settings.scaleUsers, 2);
    for (const kind of settings.stores) await scaleStore(kind, dir, large);
  }
  const exportUsers = Math.round(Number(process.env.BENCH_EXPORT_USERS ?? 100_000));
  const exportSeed = await writeSeed(dir, exportUsers, 3);
  for (const kind of settings.stores) {
    if (kind === 'sqlite' || (await postgresReachable())) exports.push(await measureExport(kind, exportSeed.file, exportUsers));
  }
  await measureCeiling(dir, 'last');
  const text = report(command, service);
  process.stdout.write(`\n${text}\n`);
  if (process.env.BENCH_OUTPUT) {
    writeFileSync(process.env.BENCH_OUTPUT, JSON.stringify({ command, machine: machine(), settings, rows, sizes, exports, notes, report: text }, null, 2));
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    progress(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}
try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
} finally {
  await cleanup();
}
