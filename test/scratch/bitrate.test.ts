import { it } from "vitest";
import { startTestServer, waitFor } from "../support/call.ts";
import { SyntheticParticipant } from "../support/SyntheticParticipant.ts";
import { fixturePaths, PARTICIPANTS } from "../../fixtures/participants.ts";
it.each(["library", "ffmpeg"] as const)("bitrate %s", async (videoEngine) => {
  const server = await startTestServer({ videoEngine, maxParticipants: 16 } as any);
  const ps: SyntheticParticipant[] = [];
  for (let k = 0; k < 9; k++) { const p = new SyntheticParticipant({ url: server.url, room: "b", name: `b${k}`, ...fixturePaths(PARTICIPANTS[k % 8]!.id, "pattern"), decode: false }); await p.join(); ps.push(p); }
  await new Promise((r) => setTimeout(r, 2000));
  if (process.env.FRESH) server.rooms.get("b")!.currentMixer!.rungEncoders.get("vp8@0")!.injectFailure();
  await new Promise((r) => setTimeout(r, 2000));
  const enc = server.rooms.get("b")!.currentMixer!.rungEncoders.get("vp8@0")!;
  let bytes = 0, frames = 0, keys = 0;
  const ticks: number[] = []; const sizes: number[] = [];
  const orig = (enc as any).encode.bind(enc);
  (enc as any).encode = (c: Buffer, t: number, d: () => void) => { ticks.push(t); return orig(c, t, d); };
  enc.on("frame", (f) => sizes.push(f.data.length));
  enc.on("frame", (f) => { bytes += f.data.length; frames++; if (f.isKeyframe) keys++; });
  const b0 = ps[0]!.bytesReceived; const t0 = performance.now();
  await new Promise((r) => setTimeout(r, 10000));
  const s = (performance.now() - t0) / 1000;
  console.log(videoEngine, "encoder kbit/s", (bytes * 8 / s / 1000).toFixed(0), "frames/s", (frames / s).toFixed(1), "keys", keys, "receiver kbit/s", ((ps[0]!.bytesReceived - b0) * 8 / s / 1000).toFixed(0));
  const gaps: Record<number, number> = {}; for (let i = 1; i < ticks.length; i++) gaps[ticks[i]! - ticks[i - 1]!] = (gaps[ticks[i]! - ticks[i - 1]!] ?? 0) + 1;
  console.log(videoEngine, "tick gaps", JSON.stringify(gaps), "sizes p50", [...sizes].sort((a, b) => a - b)[sizes.length >> 1], "max", Math.max(...sizes));
  for (const p of ps) await p.close();
  await server.close();
}, 60_000);
