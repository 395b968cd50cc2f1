// Driving recordings through the REST API as an operator would, and fetching the results.
import fs from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import type { RecordingMeta } from "../../server/recordings/RecordingStore.ts";

export const REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), `mixroom-${prefix}-`));
}

/** A queue prefix no other run shares, so leftover jobs of earlier runs never meet this one. */
export const uniquePrefix = (what: string) => `mixroom-test-${what}-${process.pid}-${Date.now().toString(36)}`;

export async function api(base: string, method: string, p: string, headers: Record<string, string> = {}) {
  const res = await fetch(base + p, { method, headers });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

export async function startRecording(base: string, room: string): Promise<RecordingMeta> {
  const r = await api(base, "POST", `/api/rooms/${room}/recording`);
  if (r.status !== 201) throw new Error(`start recording: ${r.status} ${r.text}`);
  return r.json;
}

export async function stopRecording(base: string, room: string): Promise<RecordingMeta> {
  const r = await api(base, "DELETE", `/api/rooms/${room}/recording`);
  if (r.status !== 200) throw new Error(`stop recording: ${r.status} ${r.text}`);
  return r.json;
}

/** Polls the metadata until the recording is done (or failed: then throws with its error). */
export async function waitUntilDone(base: string, id: string, timeoutMs = 60_000, seen?: RecordingMeta[]): Promise<RecordingMeta> {
  const t0 = Date.now();
  for (;;) {
    const r = await api(base, "GET", `/api/recordings/${id}`);
    if (r.status === 200) {
      seen?.push(r.json);
      if (r.json.status === "done") return r.json;
      if (r.json.status === "failed") throw new Error(`recording ${id} failed: ${r.json.error}`);
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`recording ${id} not done after ${timeoutMs} ms: ${r.text}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Downloads one of a recording's files into `dir` and returns its path. */
export async function download(base: string, id: string, name: string, dir: string): Promise<string> {
  const res = await fetch(`${base}/api/recordings/${id}/files/${name}`);
  if (res.status !== 200) throw new Error(`download ${name}: ${res.status} ${await res.text()}`);
  const file = path.join(dir, `${id}-${name}`);
  await fs.writeFile(file, Buffer.from(await res.arrayBuffer()));
  return file;
}

/** GET with the path sent exactly as written (fetch would resolve "a/../b" before sending). */
export function rawGet(base: string, rawPath: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = http.get(base + "/", { path: rawPath }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }));
    });
    req.on("error", reject);
  });
}
