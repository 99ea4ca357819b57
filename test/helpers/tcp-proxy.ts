// A TCP proxy a test starts in front of a server and pauses: a network path gone silent without closing anything.
import { connect, createServer, type Socket } from 'node:net';

export interface TcpProxy {
  /** The port the proxy listens on (127.0.0.1, picked by the OS). */
  port: number;
  /** How many connections it has accepted so far. */
  readonly accepted: number;
  /** The local ports of its open connections to the target: what the target sees as their client ports. */
  targetPorts(): number[];
  /** Stops forwarding bytes both ways (and FINs: a paused socket is not read), closing nothing; new connections wait too. */
  pause(): void;
  /** Forwards again, what was held back first. */
  resume(): void;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const upstreams = new Set<Socket>();
  let accepted = 0;
  let paused = false;
  const server = createServer((downstream) => {
    accepted++;
    const upstream = connect(target);
    upstreams.add(upstream);
    upstream.on('close', () => upstreams.delete(upstream));
    for (const [from, to] of [
      [downstream, upstream],
      [upstream, downstream],
    ] as const) {
      sockets.add(from);
      // Forwarded by hand, not piped: a pipe resumes its source on drain, and a paused socket must stay paused.
      from.on('data', (chunk) => to.write(chunk));
      from.on('end', () => to.end());
      from.on('error', () => to.destroy());
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
      if (paused) from.pause();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('the proxy has no port');
  return {
    port: address.port,
    get accepted() {
      return accepted;
    },
    targetPorts: () => [...upstreams].map((socket) => socket.localPort ?? 0),
    pause() {
      paused = true;
      for (const socket of sockets) socket.pause();
    },
    resume() {
      paused = false;
      for (const socket of sockets) socket.resume();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
