import { type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction, data, redirect } from "@remix-run/node";
import { Form, Link, useActionData, useLoaderData, useNavigation } from "@remix-run/react";
import { ZodError } from "zod";
import { requireUserId } from "~/auth/session.server";
import { AppHeader } from "~/components/app-header";
import { RelativeTime } from "~/components/relative-time";
import { RenameProject } from "~/components/rename-project";
import { RunStatusBadge } from "~/components/run-status";
import { db } from "~/db.server";
import { readForm } from "~/http/form.server";
import { MAX_TITLE_CHARS } from "~/models/project-title";
import {
  type ProjectSummary,
  createProject,
  deleteProject,
  listProjects,
  renameProject,
} from "~/models/projects.server";

export const meta: MetaFunction = () => [{ title: "Your projects · Dyno" }];

export async function loader({ request }: LoaderFunctionArgs) {
  const userId = await requireUserId(request);
  // ?delete=<id> asks to confirm deleting that project: a step of its own, so it works without JavaScript.
  return { projects: await listProjects(db, userId), confirmDelete: new URL(request.url).searchParams.get("delete") };
}

export async function action({ request }: ActionFunctionArgs) {
  const userId = await requireUserId(request);
  const form = await readForm(request);
  const intent = form.get("intent");
  const projectId = String(form.get("projectId") ?? "");
  try {
    if (intent === "create") {
      const title = String(form.get("title") ?? "").trim();
      const project = await createProject(db, userId, title || undefined);
      return redirect(`/projects/${project.id}`);
    }
    if (intent === "rename") {
      await renameProject(db, userId, projectId, String(form.get("title") ?? ""));
      return { ok: true as const, intent, projectId, message: "Renamed." };
    }
    if (intent === "delete") {
      await deleteProject(db, userId, projectId);
      return { ok: true as const, intent, projectId, message: "Project deleted." };
    }
    return data({ ok: false as const, intent, projectId, message: "Unknown action." }, { status: 400 });
  } catch (error) {
    if (error instanceof ZodError) {
      return data(
        { ok: false as const, intent, projectId, message: error.issues.map((i) => i.message).join(" ") },
        { status: 400 },
      );
    }
    throw error;
  }
}

export default function Projects() {
  const { projects, confirmDelete } = useLoaderData<typeof loader>();
  const result = useActionData<typeof action>();
  const navigation = useNavigation();
  const creating = navigation.formData?.get("intent") === "create";
  return (
    <>
      <AppHeader>
        <h1>Projects</h1>
      </AppHeader>
      <main className="page">
        <section className="card" aria-labelledby="new-project">
          <h2 id="new-project">New project</h2>
          <Form method="post" className="inline-form">
            <label htmlFor="new-title" className="visually-hidden">
              Title (optional)
            </label>
            <input
              id="new-title"
              name="title"
              maxLength={MAX_TITLE_CHARS}
              placeholder="Title (optional: the agent names it from your first prompt)"
            />
            <button type="submit" name="intent" value="create" disabled={creating}>
              {creating ? "Creating…" : "Create project"}
            </button>
          </Form>
          {result && !result.projectId ? (
            <p role="alert" className="error">
              {result.message}
            </p>
          ) : null}
        </section>

        <section aria-labelledby="your-projects">
          <h2 id="your-projects" className="section-title">
            Your projects
          </h2>
          {result?.ok && result.intent === "delete" ? (
            <p role="status" className="muted">
              {result.message}
            </p>
          ) : null}
          {projects.length === 0 ? (
            <p className="empty">No projects yet. Create one, then tell the agent what to build.</p>
          ) : (
            <ul className="project-list">
              {projects.map((project) => (
                <li key={project.id} className="project-item" data-project-id={project.id}>
                  <div className="project-main">
                    <Link to={`/projects/${project.id}`} className="project-title">
                      {project.title}
                    </Link>
                    <div className="muted">
                      {project.lastRunStatus ? (
                        <RunStatusBadge status={project.lastRunStatus} />
                      ) : (
                        <span className="badge">No runs yet</span>
                      )}{" "}
                      Last activity <RelativeTime date={project.lastActivityAt} />
                    </div>
                  </div>
                  <div className="project-actions">
                    <RenameProject
                      projectId={project.id}
                      title={project.title}
                      error={
                        result && !result.ok && result.intent === "rename" && result.projectId === project.id
                          ? result.message
                          : undefined
                      }
                    />
                    <Link
                      to={`?delete=${project.id}`}
                      preventScrollReset
                      className="action-link"
                      aria-label={`Delete ${project.title}…`}
                    >
                      Delete…
                    </Link>
                    {result && result.projectId === project.id && !(result.intent === "rename" && !result.ok) ? (
                      <p role={result.ok ? "status" : "alert"} className={result.ok ? "muted" : "error"}>
                        {result.message}
                      </p>
                    ) : null}
                  </div>
                  {confirmDelete === project.id ? <ConfirmDelete project={project} /> : null}
                </li>
              ))}
            </ul>
          )}
        </section>
      </main>
    </>
  );
}

/** The second step of a delete: what it removes, and a way back. */
function ConfirmDelete({ project }: { project: ProjectSummary }) {
  const headingId = `confirm-delete-${project.id}`;
  return (
    <section className="confirm-delete" role="group" aria-labelledby={headingId}>
      <p id={headingId} className="confirm-question">
        Delete “{project.title}”?
      </p>
      <p className="muted">
        This stops its run if one is going, and deletes its files, conversation and run history. It cannot be undone.
      </p>
      <Form method="post" className="confirm-actions">
        <input type="hidden" name="projectId" value={project.id} />
        <button type="submit" name="intent" value="delete" className="danger">
          Delete project
        </button>
        {/* Focus lands on the safe choice. */}
        <Link to="/projects" preventScrollReset className="button ghost" autoFocus>
          Cancel
        </Link>
      </Form>
    </section>
  );
}
