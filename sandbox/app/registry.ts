/**
 * The app supervisors of this Dyno process, one per (data folder, project). On globalThis: Vite's dev server loads
 * the Inngest functions and routes in a module graph of their own, apart from server/app.ts, and both must find the
 * same running process (as app/preview.server.ts does for the preview server).
 */
import { realpathSync } from "node:fs";
import path from "node:path";
import { AppSupervisor, type AppSupervisorSettings } from "./supervisor";

const REGISTRY = Symbol.for("dyno.appSupervisors");

type Registry = Map<string, AppSupervisor>;

function registry(): Registry {
  const holder = globalThis as typeof globalThis & { [REGISTRY]?: Registry };
  holder[REGISTRY] ??= new Map();
  return holder[REGISTRY];
}

function keyOf(dataDir: string, projectId: string): string {
  let real: string;
  try {
    real = realpathSync(dataDir);
  } catch {
    real = path.resolve(dataDir);
  }
  return `${real}\0${projectId}`;
}

/** The project's supervisor, made on first use; later callers' settings replace the earlier ones. */
export function appSupervisor(settings: AppSupervisorSettings): AppSupervisor {
  const key = keyOf(settings.dataDir, settings.projectId);
  const supervisors = registry();
  let supervisor = supervisors.get(key);
  if (supervisor) supervisor.updateSettings(settings);
  else {
    supervisor = new AppSupervisor(settings);
    supervisors.set(key, supervisor);
  }
  return supervisor;
}

/** Stops the project's app, removes its log, state and cgroups, and forgets its supervisor. */
export async function destroyAppSupervisor(settings: AppSupervisorSettings): Promise<void> {
  const key = keyOf(settings.dataDir, settings.projectId);
  const supervisor = appSupervisor(settings);
  registry().delete(key);
  await supervisor.destroy();
}

/** Stops every app process this Dyno process runs (it is shutting down). */
export async function stopAllAppProcesses(reason = "Dyno is shutting down"): Promise<void> {
  const supervisors = [...registry().values()];
  await Promise.all(
    supervisors.map(async (supervisor) => {
      await supervisor.stop(reason).catch(() => {});
      await supervisor.flush();
    }),
  );
}
