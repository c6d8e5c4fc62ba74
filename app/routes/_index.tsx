import type { ActionFunctionArgs, MetaFunction } from "@remix-run/node";
import { Form, useActionData, useLoaderData, useNavigation, useRevalidator } from "@remix-run/react";
import { useEffect } from "react";
import { ZodError } from "zod";
import { isFinished } from "../../db/run-status";
import { db } from "~/db.server";
import { ensureLocalBuilder } from "~/models/local-builder.server";
import { MAX_PROMPT_CHARS } from "~/models/prompt";
import {
  EngineUnavailableError,
  listRuns,
  ModelNotConfiguredError,
  NotFoundError,
  startDemoRun,
  startRun,
  stopRun,
} from "~/models/runs.server";

export const meta: MetaFunction = () => [{ title: "Dyno · foundation console" }];

export async function loader() {
  const { userId, projectId } = await ensureLocalBuilder(db);
  const runs = await listRuns(db, { userId, projectId });
  return { projectId, runs };
}

export async function action({ request }: ActionFunctionArgs) {
  const form = await request.formData();
  const { userId, projectId } = await ensureLocalBuilder(db);
  try {
    if (form.get("intent") === "stop") {
      const result = await stopRun(db, { userId, runId: String(form.get("runId") ?? "") });
      return { ok: true, message: result.stopping ? "Stopping…" : `That run has already ${result.status}.` };
    }
    if (form.get("intent") === "demo") {
      const run = await startDemoRun(db, { userId, projectId });
      return { ok: true, message: `Offline demo ${run.id.slice(0, 8)} queued (a replay of a scripted session, no model).` };
    }
    const run = await startRun(db, {
      userId,
      projectId,
      input: {
        prompt: String(form.get("prompt") ?? ""),
        mode: form.get("mode") === "ask" ? "ask" : "build",
        maxIterations: form.get("maxIterations") ? Number(form.get("maxIterations")) : undefined,
      },
    });
    return { ok: true, message: `Run ${run.id.slice(0, 8)} queued.` };
  } catch (error) {
    if (error instanceof ZodError) return { ok: false, message: error.issues.map((i) => i.message).join(" ") };
    if (error instanceof NotFoundError || error instanceof EngineUnavailableError || error instanceof ModelNotConfiguredError) {
      return { ok: false, message: error.message };
    }
    throw error;
  }
}

export default function FoundationConsole() {
  const { runs } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const navigation = useNavigation();
  const revalidator = useRevalidator();
  const active = runs.some((run) => !isFinished(run.status));

  // Live updates over SSE arrive with the builder UI; until then, poll while a run is active.
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => {
      if (revalidator.state === "idle") revalidator.revalidate();
    }, 1000);
    return () => clearInterval(timer);
  }, [active, revalidator]);

  return (
    <main className="page">
      <h1>Dyno</h1>
      <p className="lede">
        Developer console: sends <code>agent/prompt</code> to the Inngest engine and shows the runs the coding agent
        records. No model key? Run the offline demo: a replay of a scripted session that builds a todo page. Accounts,
        projects and the builder page come next.
      </p>

      <section className="card" aria-labelledby="prompt-heading">
        <h2 id="prompt-heading" className="muted">New run</h2>
        <Form method="post">
          <label htmlFor="prompt">Prompt</label>
          <textarea id="prompt" name="prompt" required maxLength={MAX_PROMPT_CHARS} placeholder="Build a todo list page" />
          <div className="row">
            <div>
              <label htmlFor="mode">Mode</label>
              <select id="mode" name="mode" defaultValue="build">
                <option value="build">Build</option>
                <option value="ask">Ask</option>
              </select>
            </div>
            <div>
              <label htmlFor="maxIterations">Iterations</label>
              <input id="maxIterations" name="maxIterations" type="number" min={1} max={500} defaultValue={5} />
            </div>
            <button type="submit" name="intent" value="prompt" disabled={navigation.state === "submitting"}>
              Send
            </button>
            <button type="submit" className="secondary" name="intent" value="demo" formNoValidate disabled={navigation.state === "submitting"}>
              Run the offline demo (replay)
            </button>
          </div>
          {result ? (
            <p role="status" className={result.ok ? "muted" : "error"}>
              {result.message}
            </p>
          ) : null}
        </Form>
      </section>

      <section className="card" aria-labelledby="runs-heading">
        <h2 id="runs-heading" className="muted">Runs</h2>
        {runs.length === 0 ? (
          <p className="muted">No runs yet.</p>
        ) : (
          <table>
            <thead>
              <tr>
                <th scope="col">Prompt</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Model</th>
                <th scope="col">Sent</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {runs.map((run) => (
                <tr key={run.id} data-run-id={run.id}>
                  <td>{run.prompt.length > 80 ? `${run.prompt.slice(0, 80)}…` : run.prompt}</td>
                  <td className={`status status-${run.status}`}>
                    {run.status}
                    {run.error ? <div className="muted error">{run.error}</div> : null}
                  </td>
                  <td>
                    <progress max={run.maxIterations} value={run.iteration} aria-label="Iterations" /> {run.iteration}/
                    {run.maxIterations}
                    {run.toolDescription ? <div className="muted">{run.toolDescription}</div> : null}
                  </td>
                  <td className="muted">
                    {run.model.startsWith("replay/") ? `Replay (${run.model.slice("replay/".length)}), not a model` : run.model}
                  </td>
                  <td className="muted">
                    {/* A fixed zone, so the server's render and the browser's match. */}
                    <time dateTime={new Date(run.createdAt).toISOString()}>
                      {new Date(run.createdAt).toLocaleTimeString("en-GB", { timeZone: "UTC" })} UTC
                    </time>
                  </td>
                  <td>
                    {isFinished(run.status) ? null : (
                      <Form method="post">
                        <input type="hidden" name="runId" value={run.id} />
                        <button className="secondary" type="submit" name="intent" value="stop" disabled={run.status === "stopping"}>
                          {run.status === "stopping" ? "Stopping…" : "Stop"}
                        </button>
                      </Form>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </main>
  );
}
