/**
 * A TCP proxy in front of the app (or of Postgres), so a test can cut every
 * open connection (a dropped network, a restarted load balancer, a database
 * blip) and watch the client reconnect, without touching the server.
 */
import net from "node:net";

export interface TcpProxy {
  url: string;
  /** Connections open right now. */
  connections(): number;
  /** Cuts every open connection; new ones are accepted as before. */
  dropAll(): void;
  /** Cuts every open connection and refuses new ones (closed at once) until resume(): an outage. */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const clients = new Set<net.Socket>();
  let paused = false;
  const server = net.createServer((client) => {
    if (paused) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    clients.add(client);
    client.on("close", () => clients.delete(client));
    for (const socket of [client, upstream]) socket.on("error", () => {});
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => clients.size,
    dropAll() {
      for (const socket of clients) socket.destroy();
    },
    pause() {
      paused = true;
      for (const socket of clients) socket.destroy();
    },
    resume() {
      paused = false;
    },
    close() {
      for (const socket of clients) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
