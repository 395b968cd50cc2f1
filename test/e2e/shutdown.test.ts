// SIGTERM to a real server process: every client is told (`shutdown`, then WebSocket close code
// 1001, or the message in a held long-poll GET) so its page reconnects elsewhere; a running
// recording is closed and left for post-processing; then the process exits.
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import { fixturePaths } from "../../fixtures/participants.ts";
import { startRecording, tempDir } from "../support/recordingApi.ts";
import { startServerProcess, type ChildService } from "../support/serverProcess.ts";
import { SyntheticParticipant } from "../support/SyntheticParticipant.ts";
import { waitFor } from "../support/call.ts";
import { RawClient } from "../support/rawClient.ts";

let server: ChildService | undefined;
let dir: string;
afterAll(async () => {
  await server?.killGroup();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function post(url: string, body?: unknown): Promise<any> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  return r.status === 202 || r.status === 201 ? r.json() : { status: r.status };
}

it("tells WebSocket and long-poll clients, closes the recording, and exits", async () => {
  await generateFixtures();
  dir = await tempDir("shutdown");
  server = await startServerProcess({ RECORDINGS_DIR: dir });
  const caller = new SyntheticParticipant({ url: server.url, room: "bye", name: "p0", ...fixturePaths("p0", "solid") });
  await caller.join();
  const ws = await new RawClient(server.url).open();
  await ws.ask({ type: "join", room: "bye", name: "ws" }, ["joined"]);
  const { session } = await post(`${server.url}/signal`);
  await post(`${server.url}/signal/${session}`, { seq: 1, message: { type: "join", room: "bye", name: "lp" } });
  let after = 0;
  for (let i = 0; i < 5 && after < 2; i++) {
    const r = await (await fetch(`${server.url}/signal/${session}?after=${after}`)).json();
    after = Math.max(after, ...r.messages.map((m: { seq: number }) => m.seq));
  }
  const rec = await startRecording(server.url, "bye");
  await new Promise((r) => setTimeout(r, 1500));
  // The page's long-poll loop: held GETs, one after another, until the server goes.
  const polled: string[] = [];
  const poller = (async () => {
    for (;;) {
      const r = await fetch(`${server!.url}/signal/${session}?after=${after}`).catch(() => undefined);
      if (!r?.ok) return;
      for (const m of (await r.json()).messages as { seq: number; message: { type: string } }[]) {
        after = Math.max(after, m.seq);
        polled.push(m.message.type);
      }
      if (polled.includes("shutdown")) return;
    }
  })();
  await new Promise((r) => setTimeout(r, 200));

  const exited = new Promise<number | null>((r) => server!.proc.once("exit", (code) => r(code)));
  server.proc.kill("SIGTERM");

  await waitFor("shutdown over the WebSocket", () => ws.inbox.find((m) => m.type === "shutdown"), 5000);
  expect(ws.inbox.find((m) => m.type === "shutdown")).toMatchObject({ reconnectAfterMs: expect.any(Number) });
  await waitFor("close code 1001", () => ws.closeCode === 1001, 5000);
  expect(caller.messages.some((m) => m.type === "shutdown")).toBe(true);
  await poller;
  expect(polled).toContain("shutdown");
  expect(await exited).toBe(0);
  server = undefined;

  const meta = JSON.parse(await fs.readFile(path.join(dir, rec.id, "recording.json"), "utf8"));
  expect(meta).toMatchObject({ endedBy: "shutdown" });
  expect(["pending", "processing"]).toContain(meta.status); // post-processing picks it up at the next start or on a worker
  await caller.close();
});
