// A TCP proxy in front of a PostgreSQL server that a test cuts (every connection dropped, new ones refused)
// and restores, to play a state database that blips.
import net from 'node:net';

export interface CuttableProxy {
  /** The server's URL with the proxy's host and port. */
  url: string;
  /** Drops every open connection and refuses new ones until restore(). */
  drop(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function cuttableProxy(url: string): Promise<CuttableProxy> {
  const upstream = new URL(url);
  let up = true;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!up) {
      client.destroy();
      return;
    }
    const server = net.connect(Number(upstream.port || 5432), upstream.hostname);
    open.add(client);
    open.add(server);
    const end = () => {
      client.destroy();
      server.destroy();
      open.delete(client);
      open.delete(server);
    };
    for (const socket of [client, server]) {
      socket.on('error', end);
      socket.on('close', end);
    }
    client.pipe(server);
    server.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const proxied = new URL(url);
  proxied.hostname = '127.0.0.1';
  proxied.port = String(address.port);
  return {
    url: proxied.toString(),
    drop() {
      up = false;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    restore() {
      up = true;
    },
    async close() {
      up = false;
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
