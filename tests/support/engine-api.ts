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
