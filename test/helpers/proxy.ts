// A TCP proxy in front of a real PostgreSQL that can go half-open: after login, on command, it swallows
// all traffic in both directions (a frozen host, a partition); it can also drop connections and heal.
import net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  frozen: boolean;
}

export class HalfOpenProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<Pair>();
  #frozen = false;

  private constructor(
    server: net.Server,
    private readonly target: URL,
  ) {
    this.#server = server;
  }

  /** Starts a proxy on 127.0.0.1 (a free port) forwarding to the host and port of `targetUrl`. */
  static async start(targetUrl: string): Promise<HalfOpenProxy> {
    const target = new URL(targetUrl);
    // allowHalfOpen: a client's FIN is swallowed too while frozen, like a dead peer.
    const server = net.createServer({ allowHalfOpen: true });
    const proxy = new HalfOpenProxy(server, target);
    server.on('connection', (client) => proxy.#accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    const address = this.#server.address();
    if (!address || typeof address === 'string') throw new Error('proxy is not listening');
    return address.port;
  }

  /** `url` (default: the proxied one) with its host and port replaced by the proxy's. */
  url(url: string = this.target.toString()): string {
    const out = new URL(url);
    out.hostname = '127.0.0.1';
    out.port = String(this.port);
    return out.toString();
  }

  /** Open connections through the proxy. */
  get connections(): number {
    return this.#pairs.size;
  }

  /** From now on nothing passes, on open connections and on new ones (accepted, then silence). */
  freeze(): void {
    this.#frozen = true;
    for (const pair of this.#pairs) pair.frozen = true;
  }

  /** Traffic flows again for new connections; the frozen ones (their bytes lost) are dropped. */
  heal(): void {
    this.#frozen = false;
    for (const pair of this.#pairs) if (pair.frozen) this.#drop(pair);
  }

  /** Resets every open connection (as a restarted server or a NAT timeout would). */
  dropAll(): void {
    for (const pair of this.#pairs) this.#drop(pair);
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: net.Socket): void {
    const upstream = net.connect({
      host: this.target.hostname,
      port: Number(this.target.port || 5432),
      allowHalfOpen: true,
    });
    const pair: Pair = { client, upstream, frozen: this.#frozen };
    this.#pairs.add(pair);
    client.on('data', (chunk) => {
      if (!pair.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.frozen) client.write(chunk);
    });
    client.on('end', () => {
      if (!pair.frozen) upstream.end();
    });
    upstream.on('end', () => {
      if (!pair.frozen) client.end();
    });
    const close = () => {
      if (pair.frozen) {
        // A dead peer: the other side hears nothing until the proxy heals or closes.
        if (client.destroyed && upstream.destroyed) this.#pairs.delete(pair);
        return;
      }
      this.#drop(pair);
    };
    client.on('error', () => {});
    upstream.on('error', () => {});
    client.on('close', close);
    upstream.on('close', close);
  }

  #drop(pair: Pair): void {
    pair.frozen = false;
    pair.client.destroy();
    pair.upstream.destroy();
    this.#pairs.delete(pair);
  }
}
