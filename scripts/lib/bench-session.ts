/**
 * The scripted session the benchmarks run (bench:agent, bench:load, bench:iteration): small files written every other
 * step, read back in between, a command every fifth, then the reply. The same turns everywhere, so their figures
 * can be put side by side.
 */
import type { ReplayScript } from "../../model-replay/script";

export function benchSession(name: string, iterations: number, delayMs = 0): ReplayScript {
  const turns: ReplayScript["turns"] = [];
  for (let i = 1; i < iterations; i++) {
    const reply =
      i % 5 === 0
        ? { tool: "run_command", command: `wc -c page-${i - 1}.html` }
        : i % 2 === 0
          ? { tool: "read_file", path: `page-${i - 1}.html` }
          : { tool: "write_file", path: `page-${i}.html`, content: `<h1>Page ${i}</h1>\n`.repeat(20) };
    turns.push({ reply, ...(delayMs ? { delayMs } : {}) });
  }
  turns.push({
    reply: { tool: "reply_to_user", message: `Wrote the pages in ${iterations} steps.` },
    ...(delayMs ? { delayMs } : {}),
  });
  return { name, turns };
}
