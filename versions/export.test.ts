import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExportError, parseBranch, parseRemote, pushHistory } from "./export";
import { historyPath, ProjectHistory } from "./store";

let root: string;
let history: ProjectHistory;
let head: string;

const bareGit = (bare: string, ...args: string[]) =>
  execFileSync("git", ["--git-dir", bare, ...args], { encoding: "utf8" });

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "dyno-export-"));
  const ws = path.join(root, "ws");
  await mkdir(ws);
  history = new ProjectHistory(historyPath(root, "p1"), ws);
  await writeFile(path.join(ws, "index.html"), "<h1>v1</h1>\n");
  const first = await history.take({
    parent: null,
    message: "Run 1a2b3c4d: Build a page\n\nstep 1 (write_file)\n",
    mode: "commit",
  });
  await writeFile(path.join(ws, "app.js"), "console.log(1);\n");
  const second = await history.take({
    parent: { commit: first.commit!, tree: first.tree },
    message: "Run 1a2b3c4d: Build a page\n\nrun ended (complete)\n",
    mode: "commit",
  });
  head = second.commit!;
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("parseRemote", () => {
  it("takes https remotes, and this machine's repositories only when allowed", () => {
    expect(parseRemote("https://example.com/a.git", { allowLocal: false })).toMatchObject({ kind: "http" });
    expect(() => parseRemote("/srv/repo.git", { allowLocal: false })).toThrow(/VERSIONS_EXPORT_ALLOW_LOCAL/);
    expect(parseRemote("/srv/repo.git", { allowLocal: true })).toEqual({ kind: "local", url: "/srv/repo.git" });
  });

  it("refuses other transports, a token in the URL, and odd branch names", () => {
    for (const url of [
      "ext::sh -c touch% /tmp/pwned",
      "ssh://git@example.com/a.git",
      "git://example.com/a",
      "ftp://x/y",
    ]) {
      expect(() => parseRemote(url, { allowLocal: true }), url).toThrow(ExportError);
    }
    expect(() => parseRemote("https://user:secret@example.com/a.git", { allowLocal: false })).toThrow(/token field/);
    expect(parseBranch("")).toBe("dyno");
    expect(parseBranch("feature/dyno")).toBe("feature/dyno");
    for (const bad of ["a..b", "-x", "x.lock", "/a", "a b", "a:b"])
      expect(() => parseBranch(bad), bad).toThrow(ExportError);
  });
});

describe("pushHistory", () => {
  it("pushes every version to a branch of a local bare repository, as commits naming the prompt and run", async () => {
    const bare = path.join(root, "remote.git");
    execFileSync("git", ["init", "-q", "--bare", bare]);
    await pushHistory(history, { remote: { kind: "local", url: bare }, branch: "dyno", headSha: head });
    expect(bareGit(bare, "rev-parse", "refs/heads/dyno").trim()).toBe(head);
    expect(bareGit(bare, "log", "--format=%s", "dyno").trim().split("\n")).toEqual([
      "Run 1a2b3c4d: Build a page",
      "Run 1a2b3c4d: Build a page",
    ]);
    expect(bareGit(bare, "ls-tree", "-r", "--name-only", "dyno").trim().split("\n")).toEqual(["app.js", "index.html"]);
  });

  it("says clearly when there is no repository there, or the transport is not allowed", async () => {
    await expect(
      pushHistory(history, {
        remote: { kind: "local", url: path.join(root, "missing.git") },
        branch: "dyno",
        headSha: head,
      }),
    ).rejects.toThrow(
      expect.objectContaining({ retriable: false, message: expect.stringMatching(/no Git repository/) }),
    );
    // A local path smuggled in as an http target is refused by git's own protocol allow-list.
    const bare = path.join(root, "other.git");
    execFileSync("git", ["init", "-q", "--bare", bare]);
    await expect(
      pushHistory(history, { remote: { kind: "http", url: new URL(`file://${bare}`) }, branch: "dyno", headSha: head }),
    ).rejects.toThrow(ExportError);
    expect(() => bareGit(bare, "rev-parse", "--verify", "-q", "refs/heads/dyno")).toThrow();
  });

  it("marks a remote that cannot be reached as worth trying again", async () => {
    // Port 1 on this machine: nothing listens, the connection is refused at once.
    const failure = await pushHistory(history, {
      remote: parseRemote("http://127.0.0.1:1/app.git", { allowLocal: true }),
      branch: "dyno",
      headSha: head,
    }).then(
      () => null,
      (error: unknown) => error as ExportError,
    );
    expect(failure).toBeInstanceOf(ExportError);
    expect(failure!.message).toMatch(/could not be reached/);
    expect(failure!.retriable).toBe(true);
  });

  describe("over http with a token", () => {
    const TOKEN = "dyno-test-token-5f2c";
    let server: http.Server;
    let base: string;
    let projects: string;

    beforeAll(async () => {
      projects = path.join(root, "http");
      await mkdir(projects);
      execFileSync("git", ["init", "-q", "--bare", path.join(projects, "app.git")]);
      // git http-backend (git's own smart-http server) behind Basic auth that only takes TOKEN.
      server = http.createServer((req, res) => {
        const auth = req.headers.authorization ?? "";
        const [, encoded] = auth.split(" ");
        const password = encoded ? Buffer.from(encoded, "base64").toString().split(":").slice(1).join(":") : "";
        if (password !== TOKEN) {
          res.writeHead(401, { "WWW-Authenticate": 'Basic realm="git"' }).end("no");
          return;
        }
        const url = new URL(req.url ?? "/", "http://x");
        const cgi = spawn("git", ["http-backend"], {
          env: {
            PATH: process.env.PATH ?? "/usr/bin:/bin",
            GIT_PROJECT_ROOT: projects,
            GIT_HTTP_EXPORT_ALL: "1",
            REMOTE_USER: "builder",
            PATH_INFO: url.pathname,
            QUERY_STRING: url.search.slice(1),
            REQUEST_METHOD: req.method ?? "GET",
            CONTENT_TYPE: req.headers["content-type"] ?? "",
            ...(req.headers["content-encoding"] ? { HTTP_CONTENT_ENCODING: req.headers["content-encoding"] } : {}),
          } as Record<string, string> as NodeJS.ProcessEnv,
        });
        req.pipe(cgi.stdin);
        const chunks: Buffer[] = [];
        cgi.stdout.on("data", (c: Buffer) => chunks.push(c));
        cgi.on("close", () => {
          const out = Buffer.concat(chunks);
          const split = out.indexOf("\r\n\r\n");
          const headerText = out.subarray(0, split).toString();
          const headers: Record<string, string> = {};
          let status = 200;
          for (const line of headerText.split("\r\n")) {
            const [name, ...rest] = line.split(": ");
            if (name?.toLowerCase() === "status") status = Number.parseInt(rest.join(": "), 10);
            else if (name) headers[name] = rest.join(": ");
          }
          res.writeHead(status, headers).end(out.subarray(split + 4));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve));
    });

    it("refuses a bad token with a clear error that does not repeat it", async () => {
      const remote = parseRemote(`${base}/app.git`, { allowLocal: true });
      const failure = await pushHistory(history, {
        remote,
        branch: "dyno",
        token: "wrong-token-9a",
        headSha: head,
      }).then(
        () => null,
        (error: unknown) => error as Error,
      );
      expect(failure).toBeInstanceOf(ExportError);
      expect(failure!.message).toMatch(/refused the credentials: check the token/);
      expect(failure!.message).not.toContain("wrong-token-9a");
      // A refusal is final: the export function records it and does not retry.
      expect((failure as ExportError).retriable).toBe(false);
    });

    it("pushes with the right token", async () => {
      const remote = parseRemote(`${base}/app.git`, { allowLocal: true });
      await pushHistory(history, { remote, branch: "main-dyno", token: TOKEN, headSha: head });
      expect(bareGit(path.join(projects, "app.git"), "rev-parse", "refs/heads/main-dyno").trim()).toBe(head);
      // Nothing of the token was written to the history repository.
      expect(existsSync(path.join(history.gitDir, "config"))).toBe(true);
      expect(execFileSync("sh", ["-c", 'grep -rl "$0" "$1" || true', TOKEN, history.gitDir]).toString()).toBe("");
    });
  });
});

describe("pushHistory of a pruned history", () => {
  it("gives a remote that has its older versions the commits themselves, and a new one the kept versions re-rooted", async () => {
    const ws = path.join(root, "ws-pruned");
    await mkdir(ws);
    const pruned = new ProjectHistory(historyPath(root, "p2"), ws);
    const commits: string[] = [];
    const take = async (n: number) => {
      await writeFile(path.join(ws, `file${n}.txt`), `version ${n}\n`);
      const parent = commits.at(-1);
      const taken = await pruned.take({
        parent: parent ? { commit: parent, tree: await pruned.treeOf(parent) } : null,
        message: `Run 1a2b3c4d: version ${n}\n`,
        mode: "commit",
        date: new Date(Date.UTC(2026, 0, 1, 0, n)),
      });
      commits.push(taken.commit!);
    };
    for (let n = 1; n <= 5; n++) await take(n);
    const before = path.join(root, "had-everything.git");
    execFileSync("git", ["init", "-q", "--bare", before]);
    await pushHistory(pruned, { remote: { kind: "local", url: before }, branch: "dyno", headSha: commits[4]! });

    await pruned.pruneBefore(commits[2]!);
    await take(6);
    // The remote that has versions 1-5 fast-forwards to the real commits.
    await pushHistory(pruned, { remote: { kind: "local", url: before }, branch: "dyno", headSha: commits[5]! });
    expect(bareGit(before, "rev-parse", "refs/heads/dyno").trim()).toBe(commits[5]);
    expect(bareGit(before, "rev-list", "--count", "dyno").trim()).toBe("6");

    // A new remote (stock git refuses a shallow push) gets versions 3-6 as a history of their own.
    const fresh = path.join(root, "fresh.git");
    execFileSync("git", ["init", "-q", "--bare", fresh]);
    await pushHistory(pruned, { remote: { kind: "local", url: fresh }, branch: "dyno", headSha: commits[5]! });
    expect(bareGit(fresh, "log", "--format=%s", "dyno").trim().split("\n")).toEqual(
      [6, 5, 4, 3].map((n) => `Run 1a2b3c4d: version ${n}`),
    );
    expect(bareGit(fresh, "rev-parse", "dyno^{tree}").trim()).toBe(await pruned.treeOf(commits[5]!));
    expect(bareGit(fresh, "fsck", "--no-dangling").trim()).toBe("");
    const first = bareGit(fresh, "rev-parse", "dyno").trim();
    // Pushed again with one more version, it fast-forwards: the re-rooted commits are the same each time.
    await take(7);
    await pushHistory(pruned, { remote: { kind: "local", url: fresh }, branch: "dyno", headSha: commits[6]! });
    expect(bareGit(fresh, "rev-parse", "dyno~1").trim()).toBe(first);
    // Nothing of the re-rooted copy stays behind a ref in Dyno's history (a prune may drop it).
    expect(execFileSync("git", ["--git-dir", pruned.gitDir, "for-each-ref"], { encoding: "utf8" }).trim()).toBe(
      `${commits[6]} commit\trefs/heads/versions`,
    );
  });
});
