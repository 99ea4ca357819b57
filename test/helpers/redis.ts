// A redis-server of the test's own on a free port, so that a test may pause it (SIGSTOP) or stop it without
// touching the Redis other tests share.
import { exitOf, freePort, makeTempDir, start, waitFor } from './process.js';

export interface TestRedis {
  /** redis://127.0.0.1:PORT */
  url: string;
  port: number;
  /** SIGSTOP: connections stay open and nothing answers, as with a hung or swapped-out server. */
  pause(): void;
  /** SIGCONT */
  resume(): void;
  /** SIGKILL, and waits for the exit. */
  stop(): Promise<void>;
}

/** A fresh redis-server on `port` (a free one by default) that keeps nothing on disk, once it accepts connections. */
export async function startRedis(port?: number): Promise<TestRedis> {
  const chosen = port ?? (await freePort());
  const args = ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const redis = start(`redis-server :${chosen}`, 'redis-server', args, {}, makeTempDir('redis'));
  await waitFor(
    () => redis.stdout().includes('Ready to accept connections'),
    10_000,
    () => `redis-server did not start\nstdout: ${redis.stdout()}\nstderr: ${redis.stderr()}`,
    redis.child,
  );
  return {
    url: `redis://127.0.0.1:${chosen}`,
    port: chosen,
    pause: () => redis.child.kill('SIGSTOP'),
    resume: () => redis.child.kill('SIGCONT'),
    async stop() {
      redis.child.kill('SIGKILL');
      await exitOf(redis);
    },
  };
}
