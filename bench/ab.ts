// An A/B of two builds on one store: another build's dist/main.js (AB_OLD, e.g. a `git worktree` of the commit
// before, built with `npm ci`) against this checkout's, both serving the same store (AB_STORE: postgres, the default,
// or sqlite: one file both open), driven in turn per scenario (the order turning each round), with the service's
// and (on PostgreSQL) the database's CPU per request, which scatter far less than req/s on a shared host. Delivery
// off on both (they share the outbox). AB_SCENARIOS: a comma-separated part of the scenarios' names to keep.
//
//   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && npm ci)
//   npm run build && AB_OLD=/tmp/old/dist/main.js AB_ROUNDS=3 node --import tsx bench/ab.ts
//   AB_STORE=sqlite AB_SCENARIOS='GET /v2/users' AB_OLD=… node --import tsx bench/ab.ts
import { authorization, call, cleanup, createKey, createStore, drive, startServer, workDir, writeRequests, type Request, type Server } from './harness.js';
import { patchBodies, prng, userBodies } from './data.js';

if (!process.env.AB_OLD) throw new Error('AB_OLD: the other build\'s dist/main.js');
const rounds = Number(process.env.AB_ROUNDS ?? 3);
const kind = process.env.AB_STORE === 'sqlite' ? 'sqlite' : 'postgres';
const store = await createStore(kind);
const dir = workDir();
const key = await createKey(store, 'ab');
const env = { WEBHOOK_DELIVERY: 'false' };
const servers: Record<string, Server> = {
  old: await startServer(store, { main: process.env.AB_OLD, env }),
  new: await startServer(store, { env }),
};
const headers = { authorization: authorization(key), 'content-type': 'application/json' };
const next = userBodies(9, 100_000);
const ids: string[] = [];
for (let i = 0; i < 3000; i += 10) {
  const made = await Promise.all(Array.from({ length: 10 }, () => call(`${servers.new!.url}/v2/users`, { method: 'POST', headers, body: JSON.stringify(next()) })));
  for (const m of made) ids.push((JSON.parse(m.body) as { id: string }).id);
}
const random = prng(7);
/** The ids in a random order (Fisher-Yates), so that neither build reads them in insertion order. */
const shuffled = (xs: string[]) => {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};
const all: Record<string, () => Request[]> = {
  'GET /v2/users/{id}': () => shuffled(ids).map((id) => ({ method: 'GET', path: `/v2/users/${id}` })),
  'GET /v2/users?limit=10': () => [{ method: 'GET', path: '/v2/users?limit=10' }],
  'GET /v2/users?limit=200': () => [{ method: 'GET', path: '/v2/users?limit=200' }],
  'PATCH /v2/users/{id}': () => { const p = patchBodies(3); return shuffled(ids).map((id) => ({ method: 'PATCH', path: `/v2/users/${id}`, body: p() })); },
  'POST /v2/users': () => { const b = userBodies(5, 100_000); return Array.from({ length: 5000 }, () => ({ method: 'POST', path: '/v2/users', body: b() })); },
};
const wanted = process.env.AB_SCENARIOS?.split(',').map((part) => part.trim());
const scenarios = Object.fromEntries(Object.entries(all).filter(([name]) => !wanted || wanted.some((part) => name.includes(part))));
const results: Record<string, number[]> = {};
try {
  for (let r = 0; r < rounds; r++) {
    for (const [name, requests] of Object.entries(scenarios)) {
      const order = r % 2 === 0 ? ['old', 'new'] : ['new', 'old'];
      for (const build of order) {
        const server = servers[build]!;
        const m = await drive({ url: server.url, pid: server.pid, authorization: authorization(key), ...(kind === 'postgres' ? { database: 'postgres' } : {}) }, writeRequests(`${dir}/${r}-${build}.tsv`, requests()));
        if (m.non2xx > 0 || m.errors > 0) console.log('non-2xx', build, name, m.non2xx, m.errors, JSON.stringify(m.statuses));
        (results[`${name} ${build}`] ??= []).push(Math.round(m.rps));
        (results[`${name} ${build} db`] ??= []).push(Math.round((m.dbCpu / m.rps) * 1e6));
        (results[`${name} ${build} node`] ??= []).push(Math.round((m.serverCpu / m.rps) * 1e6));
      }
    }
    console.log(JSON.stringify(results));
  }
} finally {
  for (const s of Object.values(servers)) await s.stop();
  await store.drop();
  await cleanup();
}
/** Of an even number of rounds, the lower middle one, as bench/run.ts does. */
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
for (const name of Object.keys(scenarios)) {
  const o = median(results[`${name} old`]!), n = median(results[`${name} new`]!);
  console.log(`${name}: old ${results[`${name} old`]!.join(' ')} (median ${o}); new ${results[`${name} new`]!.join(' ')} (median ${n}); ${Math.round((n / o - 1) * 100)}%`);
  for (const part of kind === 'postgres' ? ['db', 'node'] : ['node']) console.log(`  ${part} CPU µs/request: old ${results[`${name} old ${part}`]!.join(' ')} (median ${median(results[`${name} old ${part}`]!)}); new ${results[`${name} new ${part}`]!.join(' ')} (median ${median(results[`${name} new ${part}`]!)})`);
}
