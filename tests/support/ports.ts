import getPort from "get-port";
import type { EnginePorts } from "../../scripts/lib/engine-process";

/** Five free ports for one engine, so tests never collide with `npm run dev`. */
export async function freeEnginePorts(): Promise<EnginePorts> {
  const taken: number[] = [];
  const next = async () => {
    const port = await getPort({ host: "127.0.0.1", exclude: taken });
    taken.push(port);
    return port;
  };
  return {
    api: await next(),
    connectGateway: await next(),
    connectGatewayGrpc: await next(),
    connectExecutorGrpc: await next(),
    debugApi: await next(),
  };
}
