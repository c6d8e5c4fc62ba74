/**
 * A round-robin TCP balancer in front of the app replicas (and their preview servers), for the local production
 * topology: each new connection goes to the next replica, and to the one after it when that one refuses (a replica
 * that was killed), so nothing is sticky and a dead replica costs a client one reconnect. TCP, not HTTP: SSE, the
 * preview's WebSocket upgrades and keep-alive all pass through unchanged. In a real deployment this is nginx or a
 * cloud load balancer (README, "Production topology").
 */
import net from "node:net";

export interface Upstream {
  host: string;
  port: number;
}

export interface Balancer {
  url: string;
  port: number;
  /** Connections accepted so far, per upstream index (for tests: both replicas serve). */
  served(): number[];
  close(): Promise<void>;
}

export async function startBalancer({
  host = "127.0.0.1",
  port = 0,
  upstreams,
}: {
  host?: string;
  port?: number;
  upstreams: Upstream[];
}): Promise<Balancer> {
  if (!upstreams.length) throw new Error("the balancer needs at least one upstream");
  const sockets = new Set<net.Socket>();
  const served = upstreams.map(() => 0);
  let next = 0;

  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const server = net.createServer((client) => {
    track(client);
    client.pause();
    const first = next;
    next = (next + 1) % upstreams.length;
    const attempt = (tried: number) => {
      if (tried >= upstreams.length || client.destroyed) return void client.destroy();
      const index = (first + tried) % upstreams.length;
      const { host: upstreamHost, port: upstreamPort } = upstreams[index]!;
      const upstream = net.connect(upstreamPort, upstreamHost);
      track(upstream);
      const refused = () => attempt(tried + 1);
      upstream.once("error", refused);
      upstream.once("connect", () => {
        upstream.off("error", refused);
        served[index]! += 1;
        // Either side ending or failing ends both: a replica killed mid-stream closes its clients' connections.
        upstream.on("error", () => client.destroy());
        client.on("error", () => upstream.destroy());
        upstream.once("close", () => client.destroy());
        client.once("close", () => upstream.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
    };
    attempt(0);
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as net.AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    served: () => [...served],
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
