// A TCP relay to a server that can stop relaying, as a hung server or a black-holed network would, so that a
// test can stall a connection to a server others share without touching the server.
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface Relay {
  /** Where to connect instead of the server. */
  host: string;
  /** Holds every byte in both directions; connections stay open. */
  stall(): void;
  /** Delivers what was held, and relays again. */
  resume(): void;
  close(): Promise<void>;
}

export async function startRelay(host: string, port: number): Promise<Relay> {
  let stalled = false;
  const held: [Socket, Buffer][] = [];
  const sockets = new Set<Socket>();
  const forward = (from: Socket, to: Socket) => {
    sockets.add(from);
    from.on('data', (chunk: Buffer) => (stalled ? held.push([to, chunk]) : to.write(chunk)));
    from.on('error', () => to.destroy());
    from.on('close', () => {
      sockets.delete(from);
      to.destroy();
    });
  };
  const server = createServer((client) => {
    const upstream = connect(port, host);
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const [to, chunk] of held.splice(0)) to.write(chunk);
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
