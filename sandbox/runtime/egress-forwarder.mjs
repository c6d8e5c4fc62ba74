// The sandbox's end of the egress bridge: listens on the sandbox's own loopback (the sandbox has no other
// interface) and pipes every connection to the egress proxy's unix socket, bound in from the host. Plain Node, no
// dependencies: it runs inside the sandbox, where the app's checkout is not visible. Shared by the command
// launcher (launch.mjs) and the app process's launcher.
import net from "node:net";

/**
 * Starts the forwarder; resolves once it listens (so a command started afterwards never races it).
 * @param {{ socketPath: string, port?: number, host?: string }} options
 * @returns {Promise<import("net").Server>}
 */
export function startEgressForwarder({ socketPath, port = 3128, host = "127.0.0.1" }) {
  const server = net.createServer((client) => {
    const upstream = net.connect(socketPath);
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", fail);
    upstream.on("error", fail);
    // One side closing ends the other once what is in flight is written (destroy would drop a response's tail).
    client.on("close", () => upstream.end());
    upstream.on("close", () => client.end());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  // Well above what npm opens at once (its default maxsockets is 15 per host); a runaway loop stops here.
  server.maxConnections = 512;
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}
