/** The Inngest engine's REST API, to check what the engine itself recorded. */
export interface EngineRun {
  run_id: string;
  status: string;
}

/** The engine's runs for the `agent/prompt` event of a run (Dyno's run id is the event's id). */
export async function engineRunsForPrompt(engineUrl: string, runId: string): Promise<EngineRun[]> {
  const events = (await (await fetch(`${engineUrl}/v1/events?name=agent/prompt`)).json()) as {
    data: { internal_id?: string; id: string; data: { runId?: string } }[];
  };
  const event = events.data.find((e) => e.data.runId === runId);
  if (!event) throw new Error(`the engine has no agent/prompt event for run ${runId}`);
  const response = await fetch(`${engineUrl}/v1/events/${event.internal_id ?? event.id}/runs`);
  return ((await response.json()) as { data: EngineRun[] }).data;
}

/**
 * Everything the engine's REST API says about the events named `name` whose data matches: the events (payload
 * included), their runs, each run (with its output when the engine has recorded one) and its queue items,
 * as raw JSON text, to check that a secret is nowhere in it.
 */
export async function engineRecordsFor(
  engineUrl: string,
  name: string,
  match: (data: Record<string, unknown>) => boolean,
): Promise<{ text: string; runs: EngineRun[]; outputs: unknown[] }> {
  const since = new Date(Date.now() - 3_600_000).toISOString();
  const eventsText = await (
    await fetch(`${engineUrl}/v1/events?name=${encodeURIComponent(name)}&received_after=${since}`)
  ).text();
  const events = (
    JSON.parse(eventsText) as { data: { internal_id?: string; id: string; data: Record<string, unknown> }[] }
  ).data.filter((e) => match(e.data));
  const texts = [JSON.stringify(events)];
  const runs: EngineRun[] = [];
  const outputs: unknown[] = [];
  for (const event of events) {
    const runsText = await (await fetch(`${engineUrl}/v1/events/${event.internal_id ?? event.id}/runs`)).text();
    texts.push(runsText);
    for (const run of (JSON.parse(runsText) as { data: EngineRun[] }).data ?? []) {
      runs.push(run);
      // With checkpointing the v1 run record often has no output yet (or ever): what it has is checked.
      const runText = await (await fetch(`${engineUrl}/v1/runs/${run.run_id}`)).text();
      texts.push(runText, await (await fetch(`${engineUrl}/v1/runs/${run.run_id}/jobs`)).text());
      outputs.push((JSON.parse(runText) as { data?: { output?: unknown } }).data?.output);
    }
  }
  return { text: texts.join("\n"), runs, outputs };
}
