// The CSV export: a fresh server streams GET /v2/users/export.csv of a client's users to a reader that drops the
// bytes; rows/s, MB/s, and the server's resident memory idle and at its peak (VmHWM) over the export.
// On PostgreSQL the export runs right after the import, before autovacuum has analyzed the table: the planner then
// sorts the client's rows for every page (measured in-process: 1.6 s for 100,000 users, 0.29 s after ANALYZE).
import { request } from 'node:http';
import { authorization, createKey, createStore, fixed, importUsers, memory, progress, startServer, table, thousands, type StoreKind } from './harness.js';

export interface ExportResult {
  store: StoreKind;
  users: number;
  bytes: number;
  seconds: number;
  /** The server right after start. */
  idleRssMb: number;
  /** Its highest resident size, start and export included. */
  peakRssMb: number;
}

/** Seeds `seedFile` (`users` create bodies) into a fresh store with `users-api import`, then times one export. */
export async function measureExport(kind: StoreKind, seedFile: string, users: number): Promise<ExportResult> {
  const store = await createStore(kind);
  const key = await createKey(store, 'bench-export');
  progress(`${kind}: importing ${thousands(users)} users to export`);
  const imported = await importUsers(store, key.client_id, seedFile);
  if (imported.imported !== users) throw new Error(`import: ${JSON.stringify(imported)}`);
  const server = await startServer(store);
  try {
    const idle = memory(server.pid);
    progress(`${kind}: GET /v2/users/export.csv of ${thousands(users)} users`);
    const started = performance.now();
    const { bytes, lines } = await new Promise<{ bytes: number; lines: number }>((resolve, reject) => {
      const req = request(`${server.url}/v2/users/export.csv`, { headers: { authorization: authorization(key) }, agent: false }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`export: ${res.statusCode}`));
        let bytes = 0;
        let lines = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          for (let i = chunk.indexOf(0x0a); i !== -1; i = chunk.indexOf(0x0a, i + 1)) lines++;
        });
        res.on('end', () => resolve({ bytes, lines }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    const seconds = (performance.now() - started) / 1000;
    // Seeded external ids hold no line breaks: one line per user and the header.
    if (lines !== users + 1) throw new Error(`export: ${lines} lines for ${users} users`);
    return { store: kind, users, bytes, seconds, idleRssMb: idle.rssMb, peakRssMb: memory(server.pid).peakMb };
  } finally {
    await server.stop();
    await store.drop();
  }
}

export function exportTable(results: readonly ExportResult[]): string {
  return table(
    ['store', 'users', 'CSV export s', 'rows/s', 'MB/s', 'CSV MB', 'RSS MB idle', 'peak RSS MB'],
    results.map((r) => [
      r.store,
      thousands(r.users),
      fixed(r.seconds, 2),
      thousands(r.users / r.seconds),
      fixed(r.bytes / 1e6 / r.seconds, 1),
      fixed(r.bytes / 1e6, 1),
      fixed(r.idleRssMb, 1),
      fixed(r.peakRssMb, 1),
    ]),
    ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
  );
}
