/**
 * Export to Git: pushes a project's history, as ordinary commits whose
 * messages name the prompt and the run, to a branch of a remote the builder
 * gives. The token never appears in an argument, a URL, a file or a log: a
 * credential helper reads it from the git process's own environment, and it
 * is scrubbed from any error text. Only http(s) remotes (plus, when the
 * operator allows it, this machine's own repositories) are reached; git's
 * other transports (ext::, ssh, git://) are refused.
 */
import { git, GitError } from "./git";
import { writeObject } from "./objects";
import { VERSIONS_REF, type ProjectHistory } from "./store";

/** Holds the re-rooted history while it is pushed (a ref, so no prune deletes its commits meanwhile). */
const REROOTED_REF = "refs/dyno/export-rerooted";

export class ExportError extends Error {
  /** A remote that could not be reached (or a push that failed for no stated reason) may work later. */
  readonly retriable: boolean;
  constructor(message: string, { retriable = false }: { retriable?: boolean } = {}) {
    super(message);
    this.name = "ExportError";
    this.retriable = retriable;
  }
}

export const MAX_REMOTE_URL_CHARS = 2_000;
const BRANCH = /^(?![-.])(?!.*\.\.)(?!.*\/\/)(?!\/)(?!.*\/$)(?!.*\.lock$)[A-Za-z0-9._/-]{1,100}$/;

export type RemoteTarget = { kind: "http"; url: URL } | { kind: "local"; url: string };

/** The remote, checked: an http(s) URL without credentials in it, or (allowLocal) a file:// URL or absolute path. */
export function parseRemote(input: string, { allowLocal }: { allowLocal: boolean }): RemoteTarget {
  const text = input.trim();
  if (!text) throw new ExportError("Enter the remote's URL, e.g. https://github.com/you/app.git.");
  if (text.length > MAX_REMOTE_URL_CHARS) throw new ExportError("That URL is too long.");
  if (text.startsWith("/") || text.startsWith("file://")) {
    if (!allowLocal) {
      throw new ExportError(
        "Pushing to a repository on Dyno's own machine is off (VERSIONS_EXPORT_ALLOW_LOCAL); use an https:// remote.",
      );
    }
    return { kind: "local", url: text };
  }
  if (!URL.canParse(text)) throw new ExportError("That is not a URL (e.g. https://github.com/you/app.git).");
  const url = new URL(text);
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ExportError("Dyno pushes over https:// (or http://): other Git transports are not supported.");
  }
  if (url.password)
    throw new ExportError("Leave the token out of the URL: put it in the token field, which is stored encrypted.");
  if (!url.hostname) throw new ExportError("That URL names no host.");
  return { kind: "http", url };
}

export function parseBranch(input: string): string {
  const branch = input.trim() || "dyno";
  if (!BRANCH.test(branch))
    throw new ExportError(`“${branch}” is not a usable branch name (letters, digits, . _ / -).`);
  return branch;
}

function scrub(text: string, secret: string | undefined): string {
  let out = text;
  if (secret) out = out.split(secret).join("***");
  return out.replace(/(https?:\/\/)[^/@\s]+@/g, "$1***@");
}

/** What a failed push says, for the builder. */
function explain(stderr: string): { message: string; retriable: boolean } {
  const message = explainText(stderr);
  return { message, retriable: message === UNREACHABLE || message === FAILED };
}

const UNREACHABLE = "The remote could not be reached: check the URL.";
const FAILED = "The push failed.";

function explainText(stderr: string): string {
  if (/Authentication failed|could not read Username|could not read Password|401|403|denied/i.test(stderr)) {
    return "The remote refused the credentials: check the token (it needs write access to the repository).";
  }
  if (/non-fast-forward|fetch first|rejected/i.test(stderr)) {
    return "The remote branch has commits that are not in Dyno's history: push to a new branch name instead.";
  }
  if (/Could not resolve host|unable to access|Connection refused|timed out|Failed to connect/i.test(stderr)) {
    return UNREACHABLE;
  }
  if (/does not appear to be a git repository|not found|Repository not found/i.test(stderr)) {
    return "There is no Git repository at that URL (or the token cannot see it).";
  }
  return FAILED;
}

/** Pushes the newest version (and so every version) to `branch`. Returns the commit pushed. */
export async function pushHistory(
  history: ProjectHistory,
  {
    remote,
    branch,
    token,
    username = "x-access-token",
    headSha,
  }: {
    remote: RemoteTarget;
    branch: string;
    token?: string;
    username?: string;
    /** The newest version's commit (the branch is set to it first, whatever a crash left it at). */
    headSha: string;
  },
): Promise<string> {
  await history.setHead(headSha);
  const url = remote.kind === "http" ? remote.url.href : remote.url;
  const allowFile = remote.kind === "local" ? "always" : "never";
  const args = [
    "-c",
    "protocol.allow=never",
    "-c",
    "protocol.https.allow=always",
    "-c",
    "protocol.http.allow=always",
    "-c",
    `protocol.file.allow=${allowFile}`,
    "-c",
    "http.followRedirects=false",
    // The helper echoes the token from the environment: it is never an argument git or ps could show.
    "-c",
    'credential.helper=!f() { test "$1" = get || exit 0; echo "username=$DYNO_GIT_USERNAME"; echo "password=$DYNO_GIT_TOKEN"; }; f',
    "push",
    "--porcelain",
    "--no-verify",
    "--",
    url,
  ];
  const push = async (source: string) => {
    const pushed = await git([...args, `${source}:refs/heads/${branch}`], {
      gitDir: history.gitDir,
      timeoutMs: 120_000,
      env: { DYNO_GIT_TOKEN: token ?? "", DYNO_GIT_USERNAME: token ? username : "", GIT_ASKPASS: "/bin/false" },
      okCodes: [1],
    });
    // --porcelain says why a ref was refused on stdout ("[remote rejected] (shallow update not allowed)").
    if (pushed.exitCode !== 0)
      throw new GitError("git push failed", `${pushed.stdout.toString()}\n${pushed.stderr}`, pushed.exitCode);
  };
  try {
    try {
      await push(VERSIONS_REF);
    } catch (error) {
      // Pruned history is shallow: a remote without its older versions refuses it ("shallow update not allowed"),
      // and one that was given the re-rooted copy below sees no fast-forward. Either gets the kept versions as a
      // history of their own, whose commits are the same for as long as the oldest kept version is.
      if (!(error instanceof GitError) || !(await history.oldestKept()) || !/rejected/.test(error.stderr)) throw error;
      await history.setRef(REROOTED_REF, await rerootedHistory(history));
      try {
        await push(REROOTED_REF);
      } finally {
        await history.deleteRef(REROOTED_REF);
      }
    }
  } catch (error) {
    if (error instanceof GitError) {
      const detail = scrub(error.stderr.trim().split("\n").slice(-3).join(" "), token).slice(0, 300);
      const { message, retriable } = explain(error.stderr);
      throw new ExportError(`${message}${detail ? ` (git: ${detail})` : ""}`, { retriable });
    }
    throw error;
  }
  return headSha;
}

/**
 * The versions from the oldest kept one on, as commits of their own: the same trees, authors, dates and messages,
 * the oldest with no parent and each later one on the one before. Deterministic, so a second push of a longer
 * history fast-forwards the first. Returns the newest's commit.
 */
export async function rerootedHistory(history: ProjectHistory): Promise<string> {
  const list = await git(["rev-list", "--reverse", VERSIONS_REF], { gitDir: history.gitDir });
  const commits = list.stdout.toString().split("\n").filter(Boolean);
  const batch = await git(["cat-file", "--batch"], {
    gitDir: history.gitDir,
    input: commits.map((c) => `${c}\n`).join(""),
    maxOutputBytes: 1024 * 1024 * 1024,
  });
  const out = batch.stdout;
  let offset = 0;
  let parent: string | null = null;
  for (let i = 0; i < commits.length; i++) {
    const headerEnd = out.indexOf(10, offset);
    const [, type, size] = out.subarray(offset, headerEnd).toString().split(" ");
    if (type !== "commit") throw new Error(`history commit ${commits[i]} is a ${type}`);
    const body = out.subarray(headerEnd + 1, headerEnd + 1 + Number(size));
    offset = headerEnd + 1 + Number(size) + 1;
    // A commit's header lines come before its first blank line; only its parent lines change.
    const split = body.indexOf("\n\n");
    const header = body.subarray(0, split).toString("utf8").split("\n");
    const kept = header.filter((line) => !line.startsWith("parent "));
    if (parent) kept.splice(1, 0, `parent ${parent}`);
    parent = await writeObject(
      history.gitDir,
      "commit",
      Buffer.concat([Buffer.from(kept.join("\n")), body.subarray(split)]),
    );
  }
  if (!parent) throw new ExportError("There is nothing to push yet: versions are taken when a run changes files.");
  return parent;
}
