/**
 * npm run bench:streaming — what the streaming path adds per token batch.
 *
 * The real BAML client streams a write_file from the replay server (pieces of
 * --chunk characters every --delay ms); the think step's publisher
 * (inngest/agent/stream-publisher.ts) turns partials into frames, which go
 * through NOTIFY and the process's frame bus to the builder's SSE response
 * (app/models/project-events.server.ts), read here as a client reads it. For
 * each piece the replay server wrote, the latency is the time until the first
 * frame that holds it reaches the SSE reader. Side by side, in the same run:
 * the durable event path, where each piece is a run_events row (appendRunEvent,
 * NOTIFY, the shared feed, the same SSE response), timed from the same write.
 *
 * Postgres at DATABASE_URL, else PGlite in memory.
 * Options: --streams N (5), --chunks N (pieces per stream, 150), --chunk N (characters, 24), --delay MS (20).
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

process.env.BAML_LOG ??= "error";
process.env.NO_PROXY = "127.0.0.1,localhost";

const { values: args } = parseArgs({
  options: {
    streams: { type: "string", default: "5" },
    chunks: { type: "string", default: "150" },
    chunk: { type: "string", default: "24" },
    delay: { type: "string", default: "20" },
  },
});
const STREAMS = Number(args.streams);
const CHUNKS = Number(args.chunks);
const CHUNK_CHARS = Number(args.chunk);
const DELAY_MS = Number(args.delay);

const percentile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)] ?? 0;
const ms = (x: number) => `${x.toFixed(1)} ms`.padStart(10);

async function main() {
  const { createDatabase } = await import("../db/client");
  const { appendRunEvent } = await import("../db/run-events");
  const { projects, runs, users } = await import("../db/schema");
  const { startReplayServer } = await import("../model-replay/server");
  const { createClientRegistry } = await import("../inngest/agent/model/client");
  const { nextAction } = await import("../inngest/agent/model/next-action");
  const { streamPublisher } = await import("../inngest/agent/stream-publisher");
  const { projectEventStream } = await import("../app/models/project-events.server");
  const { SseParser } = await import("../tests/support/sse");

  const url = process.env.DATABASE_URL;
  const database = url ? createDatabase({ url }) : createDatabase({ pglite: "memory://" });
  await database.migrate();
  const { db } = database;
  const [user] = await db
    .insert(users)
    .values({ email: `bench-${randomUUID()}@example.test`, passwordHash: "!" })
    .returning();
  const [project] = await db.insert(projects).values({ userId: user!.id, title: "bench" }).returning();
  const [run] = await db
    .insert(runs)
    .values({ userId: user!.id, projectId: project!.id, prompt: "bench", maxIterations: 5 })
    .returning();

  // Letters only: a character of the reply's JSON is a character of the content, so pieces map onto frames.
  const content = Array.from({ length: CHUNKS * CHUNK_CHARS }, (_, i) => "abcdefghij"[i % 10]).join("");
  const raw = JSON.stringify({ tool: "write_file", path: "bench.txt", content });
  const contentStart = raw.indexOf('"content":"') + '"content":"'.length;
  const writes = new Map<string, { at: number; sentChars: number }[]>();
  const replay = await startReplayServer({
    scripts: [],
    onChunk: ({ model, at, sentChars }) => writes.get(model)?.push({ at, sentChars }),
  });

  // One SSE reader for the project, for both paths.
  const closed = new AbortController();
  const response = projectEventStream(database, { projectId: project!.id, signal: closed.signal });
  const frameArrivals: { at: number; streamId: string; chars: number }[] = [];
  const rowArrivals = new Map<string, number>();
  const parser = new SseParser();
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      const at = performance.now();
      for (const message of parser.push(decoder.decode(chunk, { stream: true }))) {
        const data = JSON.parse(message.data) as Record<string, unknown>;
        if (message.event === "run-stream" && !data.done) {
          frameArrivals.push({
            at,
            streamId: String(data.streamId),
            chars: Number(data.skipped) + String(data.text).length,
          });
        } else if (message.event === "run-event") {
          const key = (data.data as { key?: string } | undefined)?.key;
          if (key) rowArrivals.set(key, at);
        }
      }
    }
  })().catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 300));

  const streamLatencies: number[] = [];
  const bamlLatencies: number[] = [];
  const durableLatencies: number[] = [];
  let frames = 0;
  let uncovered = 0;
  for (let s = 0; s < STREAMS; s++) {
    // The streaming path: BAML's stream, the publisher, NOTIFY, the bus, SSE.
    const name = `bench-stream-${s}`;
    replay.addScript({ name, turns: [{ raw, chunkChars: CHUNK_CHARS, chunkDelayMs: DELAY_MS }] });
    writes.set(name, []);
    const config = { provider: "replay" as const, model: name, label: `replay/${name}` };
    const publisher = streamPublisher(database, { runId: run!.id, projectId: project!.id, iteration: s + 1 });
    const before = frameArrivals.length;
    const partials: { at: number; chars: number }[] = [];
    const result = await nextAction({
      config,
      registry: createClientRegistry(config, { replayBaseUrl: replay.url }),
      mode: "build",
      context: { mode: "build", iteration: s + 1, max_iterations: 5, files: [], todos: [] },
      conversation: [{ role: "user", content: "bench" }],
      onPartial: (partial) => {
        const text = (partial as { content?: string | null }).content;
        partials.push({ at: performance.now(), chars: text?.length ?? 0 });
        publisher.partial(partial);
      },
    });
    if (!result.ok) throw new Error(`the bench reply did not parse: ${result.error}`);
    frames += publisher.sent;
    await publisher.close();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const arrivals = frameArrivals.slice(before);
    for (const write of writes.get(name)!) {
      const chars = Math.min(content.length, write.sentChars - contentStart);
      if (chars <= 0) continue;
      const seen = arrivals.find((a) => a.chars >= chars && a.at >= write.at);
      if (seen) streamLatencies.push(seen.at - write.at);
      // A piece may end on a stray escape character in the partial: count one character less.
      const parsed = partials.find((p) => p.chars >= chars - 1 && p.at >= write.at);
      if (parsed) bamlLatencies.push(parsed.at - write.at);
      else uncovered++; // The last pieces: the durable event shows them.
    }

    // The durable path for the same pieces: one run_events row each, timed from the replay server's write.
    const durableName = `bench-durable-${s}`;
    replay.addScript({ name: durableName, turns: [{ raw, chunkChars: CHUNK_CHARS, chunkDelayMs: DELAY_MS }] });
    const pending: Promise<unknown>[] = [];
    const written: { key: string; at: number }[] = [];
    writes.set(durableName, []);
    const durableReplay = replay;
    const res = await fetch(`${durableReplay.url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: durableName, messages: [{ role: "user", content: "bench" }], stream: true }),
    });
    const reader = res.body!.getReader();
    let piece = 0;
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
      // Each piece the client reads becomes a row, as a row-per-batch design would write it.
      const key = `${s}-${piece++}`;
      const at = writes.get(durableName)!.at(-1)?.at ?? performance.now();
      written.push({ key, at });
      pending.push(
        appendRunEvent(db, { runId: run!.id, projectId: project!.id, type: "bench_batch", data: { key, piece } }),
      );
    }
    await Promise.all(pending);
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const { key, at } of written) {
      const seen = rowArrivals.get(key);
      if (seen !== undefined) durableLatencies.push(seen - at);
    }
  }
  closed.abort();

  const row = (label: string, xs: number[]) =>
    `${label.padEnd(34)}${String(xs.length).padStart(7)}${ms(percentile(xs, 0.5))}${ms(percentile(xs, 0.95))}${ms(percentile(xs, 0.99))}`;
  console.log(
    `\nbench:streaming: ${database.driver}, ${STREAMS} streams of ${CHUNKS} pieces × ${CHUNK_CHARS} characters, ${DELAY_MS} ms apart`,
  );
  console.log(
    `${"path (replay write → SSE receipt)".padEnd(34)}${"batches".padStart(7)}${"p50".padStart(10)}${"p95".padStart(10)}${"p99".padStart(10)}`,
  );
  console.log(row("streaming (frames, throttled)", streamLatencies));
  console.log(row("  of which BAML (write → partial)", bamlLatencies));
  console.log(row("durable (a run_events row each)", durableLatencies));
  console.log(
    `frames sent: ${frames} for ${STREAMS * CHUNKS} pieces (${(frames / STREAMS).toFixed(0)} per stream); ` +
      `pieces no frame showed before the answer ended: ${uncovered}; rows written by the durable path: ${durableLatencies.length}`,
  );
  await replay.close();
  await database.close();
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
