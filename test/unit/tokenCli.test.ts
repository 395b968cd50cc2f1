// `npm run token` as a user runs it: a child process with AUTH_SECRET in its environment.
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { verifyRoomToken } from "../../server/roomTokens.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SECRET = "c".repeat(40);

function run(args: string[], env: Record<string, string | undefined>): Promise<{ code: number; stdout: string; stderr: string }> {
  const { AUTH_SECRET: _, TOKEN_TTL_S: __, ...base } = process.env;
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", "server/token.ts", ...args], { cwd: root, env: { ...base, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

describe("token CLI", () => {
  it("prints a token that verifies, and a join link with --url", async () => {
    const r = await run(["--room", "r1", "--name", "Ada Lovelace", "--identity", "ada", "--rights", "subscribe,moderate", "--ttl", "120", "--url", "http://example.test:8080/"], { AUTH_SECRET: SECRET });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const [token, link, ...rest] = r.stdout.trimEnd().split("\n");
    expect(rest).toEqual([]);
    const grant = await verifyRoomToken(SECRET, token!, "r1");
    expect(grant).toMatchObject({ room: "r1", name: "Ada Lovelace", identity: "ada", rights: ["subscribe", "moderate"] });
    expect(grant.expiresAt - Math.floor(Date.now() / 1000)).toBeGreaterThan(100);
    expect(link).toBe(`http://example.test:8080/?room=r1&name=Ada%20Lovelace&token=${token}`);
  });

  it("defaults the ttl to TOKEN_TTL_S and prints only the token without --url", async () => {
    const r = await run(["--room", "r1", "--name", "Ada"], { AUTH_SECRET: SECRET, TOKEN_TTL_S: "600" });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    const grant = await verifyRoomToken(SECRET, lines[0]!, "r1");
    expect(grant.rights).toEqual(["publish", "subscribe"]);
    expect(grant.expiresAt - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(600);
  });

  it("exits 2 with a clear message on a missing secret or bad arguments", async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--room", "r1", "--name", "Ada"], {}, /AUTH_SECRET is not set/],
      [["--room", "r1", "--name", "Ada"], { AUTH_SECRET: "short" }, /AUTH_SECRET must be at least 32/],
      [["--name", "Ada"], { AUTH_SECRET: SECRET }, /--room is required/],
      [["--room", "a b", "--name", "Ada"], { AUTH_SECRET: SECRET }, /room must be/],
      [["--room", "r1", "--name", "Ada", "--rights", "publish,fly"], { AUTH_SECRET: SECRET }, /unknown right "fly"/],
      [["--room", "r1", "--name", "Ada", "--ttl", "5"], { AUTH_SECRET: SECRET }, /ttl must be/],
      [["--room", "r1", "--name", "Ada", "--url", "ftp://x"], { AUTH_SECRET: SECRET }, /--url must be/],
      [["--room", "r1", "--name", "Ada", "--bogus"], { AUTH_SECRET: SECRET }, /bogus/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => run(args, env)));
    for (const [i, [args, , msg]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(msg);
    }
  });
});
