// The production build: `npm run build` compiles the server and pre-builds the client; the compiled
// server then runs a call with plain `node`, loading no TypeScript, no esbuild and no tsx (a module
// hook makes any such load fail), and serves the pre-built page and script.
import { execFile } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import type { RunningServer } from "../../server/main.ts";
import { closeAll, joinAll, waitForTiles } from "../support/call.ts";
import { tempDir } from "../support/recordingApi.ts";
import { startBuiltServerProcess, type ChildService } from "../support/serverProcess.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
let server: ChildService | undefined;
let dir: string;
beforeAll(async () => {
  await generateFixtures();
  dir = await tempDir("build");
}, 60_000);
afterAll(async () => {
  await server?.killGroup();
  await fs.rm(dir, { recursive: true, force: true });
});

it("builds, then runs a call from compiled JavaScript with the pre-built client", async () => {
  await promisify(execFile)("npm", ["run", "-s", "build"], { cwd: root, timeout: 120_000 });
  // Its rooms in two media workers: the compiled worker entry runs too.
  server = await startBuiltServerProcess({ RECORDINGS_DIR: dir, MEDIA_WORKERS: "2" });
  expect(server.log()).toContain('"client":"prebuilt"');
  expect(server.log()).toContain('"mediaWorkers":2');
  expect(Buffer.from(await (await fetch(`${server.url}/client.js`, { headers: { "accept-encoding": "identity" } })).arrayBuffer()).equals(await fs.readFile(path.join(root, "dist/client/client.js")))).toBe(true);
  expect(await (await fetch(`${server.url}/`)).text()).toBe(await fs.readFile(path.join(root, "client/index.html"), "utf8"));
  const ps = await joinAll({ url: server.url } as RunningServer, "built", ["p0", "p1"]);
  try {
    for (const p of ps) await waitForTiles(p, ["p0", "p1"]);
  } finally {
    await closeAll(ps);
  }
  expect(server.log()).not.toContain("loaded at run time by the production build");
}, 180_000);
