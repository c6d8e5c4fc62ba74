/**
 * Tells the webhooks that a run ended: sends `run/ended`, whose id is
 * derived from the run's, so a re-executed closing step sends the same
 * event again instead of a second one. Called from every run end (endRun in
 * run-lifecycle.ts: finish, a failure, a stop, the reconciler).
 *
 * It never holds up or fails the run: a project without webhooks sends
 * nothing, the send gets a few seconds, and a failure is logged, not thrown.
 */
import { env } from "../../app/env.server";
import type { Db } from "../../db/client";
import type { Run } from "../../db/schema";
import { inngest, runEnded } from "../client";
import { hasWebhooks } from "./deliveries";

const SEND_WAIT_MS = 5_000;

export const runEndedEventId = (runId: string) => `run-ended-${runId}`;

export async function announceRunEnded(
  db: Db,
  run: Pick<Run, "id" | "projectId">,
  status: "complete" | "failed" | "stopped",
): Promise<void> {
  try {
    if (!(await hasWebhooks(db, run.projectId, env()))) return;
    const sent = inngest.send(
      runEnded.create({ runId: run.id, projectId: run.projectId, status }, { id: runEndedEventId(run.id) }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), SEND_WAIT_MS)));
    const outcome = await Promise.race([sent, late]).finally(() => clearTimeout(timer));
    if (outcome === "late") {
      sent.catch((error: unknown) => console.warn(`run ${run.id}: run/ended was not sent: ${String(error)}`));
      console.warn(`run ${run.id}: run/ended is taking over ${SEND_WAIT_MS / 1000} s to send; the run goes on`);
    }
  } catch (error) {
    console.warn(
      `run ${run.id}: its webhooks were not told it ended: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
