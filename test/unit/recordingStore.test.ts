import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BadNameError, newRecordingId, RecordingStore, type RecordingMeta } from "../../server/recordings/RecordingStore.ts";

let root: string;
let store: RecordingStore;
beforeEach(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), "store-"));
  store = new RecordingStore(path.join(root, "recs"));
  await store.init();
});
afterEach(() => fs.rm(root, { recursive: true, force: true }));

const meta = (id: string, startedAt: string): RecordingMeta => ({
  id, room: "r", status: "recording", startedAt, parts: [], participants: [], output: { width: 1280, height: 720, fps: 30 }, progress: 0, attempts: 0,
});

describe("RecordingStore", () => {
  it("makes ids that are safe folder names and unique", () => {
    const a = newRecordingId("team room/../x", new Date("2026-01-02T03:04:05.678Z"));
    expect(a).toMatch(/^team_room____x-20260102T030405Z-[0-9a-f]{6}$/);
    expect(newRecordingId("r")).not.toBe(newRecordingId("r"));
  });

  it("writes, updates and lists metadata, newest first, skipping folders without it", async () => {
    await store.create(meta("old", "2026-01-01T00:00:00.000Z"));
    await store.create(meta("new", "2026-02-01T00:00:00.000Z"));
    await fs.mkdir(path.join(store.root, "stray"));
    await store.update("old", (m) => (m.status = "done"));
    expect((await store.list()).map((m) => [m.id, m.status])).toEqual([["new", "recording"], ["old", "done"]]);
    expect(await store.read("missing")).toBeUndefined();
    expect(await store.update("missing", () => {})).toBeUndefined();
    // Atomic writes leave no temporary files behind.
    expect(await fs.readdir(store.dirOf("old"))).toEqual(["recording.json"]);
  });

  it("refuses names that could leave a recording's folder", () => {
    for (const bad of ["../x", "..", "a/b", "/etc/passwd", ".hidden", "", "a\\b", "x".repeat(200)]) {
      expect(() => store.filePath("rec", bad), bad).toThrow(BadNameError);
    }
    for (const bad of ["..", "../etc", "a/b", ""]) expect(() => store.dirOf(bad), bad).toThrow(BadNameError);
    expect(store.filePath("rec", "recording.webm")).toBe(path.join(store.root, "rec", "recording.webm"));
  });

  it("removes a recording's folder", async () => {
    await store.create(meta("gone", "2026-01-01T00:00:00.000Z"));
    await store.remove("gone");
    expect(await store.read("gone")).toBeUndefined();
  });
});
