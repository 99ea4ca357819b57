// The load generator process: runs autocannon against one URL and prints one JSON line (a LoadResult).
// Usage: node --import tsx bench/load.ts <spec.json>   (see LoadSpec in harness.ts)
// Requests cycle through a TSV file of "METHOD<TAB>PATH<TAB>BODY[<TAB>Header-Name: value ...]" lines shared
// by all connections, so a list of unique requests (DELETE of fresh ids) hands each id out once. Latency is recorded here from
// autocannon's per-response timings with microsecond resolution (its own histogram keeps whole milliseconds).
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import type { LoadResult, LoadSpec } from './harness.js';

interface Line {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  body: string | undefined;
  headers: Record<string, string>;
}

function readLines(file: string): Line[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const [method = 'GET', path = '/', body = '', ...headerFields] = line.split('\t');
      const headers = Object.fromEntries(headerFields.map((field) => field.split(/:\s*(.*)/, 2)));
      return { method: method as Line['method'], path, body: body === '' ? undefined : body, headers };
    });
}

interface Recorder {
  latencies: Float64Array;
  count: number;
  statuses: Map<number, number>;
}

function run(spec: LoadSpec, file: string, seconds: number, recorder: Recorder | undefined): Promise<autocannon.Result> {
  const lines = readLines(file);
  let next = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: seconds,
        timeout: 30,
        headers: spec.headers,
        requests: [
          {
            setupRequest: (request) => {
              const line = lines[next++ % lines.length] as Line;
              return { ...request, method: line.method, path: line.path, body: line.body, headers: { ...request.headers, ...line.headers } };
            },
          },
        ],
      },
      (error, result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(result)),
    );
    if (recorder) {
      // autocannon 8 emits (client, statusCode, bytes, milliseconds); its typings omit the client.
      (instance as unknown as NodeJS.EventEmitter).on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (recorder.count === recorder.latencies.length) {
          const grown = new Float64Array(recorder.latencies.length * 2);
          grown.set(recorder.latencies);
          recorder.latencies = grown;
        }
        recorder.latencies[recorder.count++] = ms;
        recorder.statuses.set(status, (recorder.statuses.get(status) ?? 0) + 1);
      });
    }
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

const specFile = process.argv[2];
if (!specFile) {
  console.error('usage: load.ts <spec.json>');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(specFile, 'utf8')) as LoadSpec;
if (spec.warmupSeconds > 0) await run(spec, spec.warmupRequestsFile ?? spec.requestsFile, spec.warmupSeconds, undefined);
// The parent counts the server's CPU from this line on.
process.stdout.write('warmed\n');
const recorder: Recorder = { latencies: new Float64Array(1 << 16), count: 0, statuses: new Map() };
const cpuBefore = process.cpuUsage();
const result = await run(spec, spec.requestsFile, spec.durationSeconds, recorder);
const cpu = process.cpuUsage(cpuBefore);
const sorted = recorder.latencies.subarray(0, recorder.count).sort();
const ok = [...recorder.statuses].filter(([status]) => status >= 200 && status < 300).reduce((n, [, count]) => n + count, 0);
const output: LoadResult = {
  tool: 'autocannon',
  requests: recorder.count,
  seconds: result.duration,
  rps: recorder.count / result.duration,
  p50: percentile(sorted, 50),
  p99: percentile(sorted, 99),
  non2xx: recorder.count - ok,
  errors: result.errors + result.timeouts,
  statuses: Object.fromEntries(recorder.statuses),
  loaderCpu: (cpu.user + cpu.system) / 1e6 / result.duration,
};
process.stdout.write(`${JSON.stringify(output)}\n`);
