/** A link to a TCP server (Postgres) that a test can take down and bring back, as a restarting server looks to clients. */
import net from "node:net";
import getPort from "get-port";

/** A TCP link to Postgres that can go down (every connection cut, new ones refused) and come back on the same port. */
export async function startCuttableLink(targetPort: number, targetHost: string) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  const port = await getPort({ host: "127.0.0.1" });
  const up = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, targetHost);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on("error", () => {});
          socket.on("close", () => sockets.delete(socket));
        }
        client.pipe(upstream).pipe(client);
        client.on("close", () => upstream.destroy());
        upstream.on("close", () => client.destroy());
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
  const down = () => {
    server?.close();
    server = undefined;
    for (const socket of sockets) socket.destroy();
  };
  await up();
  return { port, up, down, close: async () => down() };
}
