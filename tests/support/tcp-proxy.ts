/**
 * A TCP proxy in front of the app, so a test can cut every open connection
 * (a dropped network, a restarted load balancer) and watch the browser
 * reconnect, without touching the app.
 */
import net from "node:net";

export interface TcpProxy {
  url: string;
  /** Connections open right now. */
  connections(): number;
  /** Cuts every open connection; new ones are accepted as before. */
  dropAll(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetUrl: string): Promise<TcpProxy> {
  const target = new URL(targetUrl);
  const clients = new Set<net.Socket>();
  const server = net.createServer((client) => {
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
    close() {
      for (const socket of clients) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
