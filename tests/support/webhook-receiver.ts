/**
 * A webhook receiver on 127.0.0.1 for tests: it records every request (the
 * raw body, as a receiver must verify it) and answers each path with the
 * statuses a test asks for in turn ("hang" never answers).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Answer = number | "hang";

export interface WebhookReceiver {
  url(path: string): string;
  /** The answers a path gives, in order; the last one repeats. Unset paths answer 200. */
  answer(path: string, answers: Answer[]): void;
  received(path?: string): ReceivedRequest[];
  /** Resolves once `path` has had `count` requests. */
  waitFor(path: string, count: number, timeoutMs?: number): Promise<ReceivedRequest[]>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const requests: ReceivedRequest[] = [];
  const plans = new Map<string, Answer[]>();
  const waiters = new Set<() => void>();
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const path = req.url ?? "/";
      const index = requests.filter((r) => r.path === path).length;
      requests.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      for (const wake of waiters) wake();
      const plan = plans.get(path) ?? [200];
      const answer = plan[Math.min(index, plan.length - 1)]!;
      if (answer === "hang") {
        hanging.add(res);
        res.on("close", () => hanging.delete(res));
        return;
      }
      res.writeHead(answer, { "Content-Type": "text/plain" }).end(answer < 300 ? "ok" : "no");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const received = (path?: string) => requests.filter((r) => path === undefined || r.path === path);
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    answer: (path, answers) => plans.set(path, answers),
    received,
    waitFor(path, count, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const got = received(path);
          if (got.length < count) return;
          cleanup();
          resolve(got);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${path}: ${received(path).length} of ${count} requests within ${timeoutMs} ms`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
