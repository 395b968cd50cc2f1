// werift's per-packet cost in isolation: the same VP8 packets sent over n peer connections (the
// composite fan-out) and one camera-like stream received back, every peer in this process over
// loopback; CPU (user + system, this process) per packet sent + received. No ffmpeg, no mixer, so
// the figure is steadier than the whole benchmark's (npm run bench varies by ±0.1 cores); still,
// compare interleaved runs. `--senders werift,lean` alternates werift's own RTCRtpSender.sendRtp
// with the server's lean send path (server/leanSender.ts) for the fan-out, `--rounds` times, in this
// one process, and prints each beside the other (the ratio is lean / werift, per round).
// Usage: node --import tsx bench/packetPath.ts [--receivers 4] [--seconds 10] [--rate 160] [--size 1100]
//                                              [--senders werift,lean] [--rounds 3] [--burst 1000]
// --burst N: the sender side alone instead: N packets sent back to back on one connection, this
// process's CPU until they are on the wire (the receiver's work comes after the window), each sender
// in turn, --rounds times; prints the median µs per send of each.
import { parseArgs } from "node:util";
import { LeanSender } from "../server/leanSender.ts";
import { RtpHeader, RtpPacket, type RTCRtpSender } from "werift";
import { weriftPair } from "../test/support/weriftPair.ts";

const { values: a } = parseArgs({ options: {
  receivers: { type: "string", default: "4" },
  seconds: { type: "string", default: "10" },
  rate: { type: "string", default: "160" }, // packets/s of the composite (1.5 Mbit/s ≈ 160 × 1200 B)
  size: { type: "string", default: "1100" },
  senders: { type: "string", default: "werift" },
  rounds: { type: "string", default: "1" },
  burst: { type: "string", default: "0" },
} });
const receivers = Number(a.receivers), seconds = Number(a.seconds), rate = Number(a.rate), size = Number(a.size);
const senders = a.senders.split(",") as ("werift" | "lean")[];
if (senders.some((m) => m !== "werift" && m !== "lean")) throw new Error(`--senders: werift and/or lean, got ${a.senders}`);

/** A sendonly → recvonly pair; resolves when media can flow. */
async function connect(): Promise<{ sender: RTCRtpSender; received: () => number; close: () => void }> {
  const pair = await weriftPair();
  let count = 0;
  pair.onPacket(() => count++);
  return { sender: pair.sender, received: () => count, close: () => void pair.close() };
}

const links = await Promise.all(Array.from({ length: receivers }, connect));
const back = await connect(); // the one incoming stream (a camera), as the server receives it
const payload = Buffer.alloc(size, 0x5a);
const counters = { out: 0, back: 0 };
/** The next packet of a stream: consecutive sequence numbers (a gap would make the receiver NACK). */
const packet = (stream: keyof typeof counters) => {
  const seq = counters[stream]++;
  return new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: seq & 0xffff, timestamp: (seq * 90) >>> 0, marker: false }), payload);
};

// Warm up (JIT, DTLS settled), then measure.
const leans = links.map((l) => new LeanSender(l.sender));
const run = async (s: number, mode: "werift" | "lean" = "werift") => {
  const periodMs = 20;
  const perTick = Math.max(1, Math.round((rate * periodMs) / 1000));
  const end = performance.now() + s * 1000;
  let sent = 0;
  while (performance.now() < end) {
    for (let i = 0; i < perTick; i++) {
      const p = packet("out");
      if (mode === "lean") for (const [i, l] of links.entries()) leans[i]!.send(p) || void l.sender.sendRtp(p).catch(() => {});
      else for (const l of links) void l.sender.sendRtp(p).catch(() => {});
      // one incoming packet for every `receivers` outgoing, as in a room of receivers + 1 camera
      void back.sender.sendRtp(packet("back")).catch(() => {});
      sent += links.length + 1;
    }
    await new Promise((r) => setTimeout(r, periodMs));
  }
  await new Promise((r) => setTimeout(r, 200));
  return sent;
};
/** --burst: the sender side alone, each sender in turn. */
async function bursts(n: number): Promise<void> {
  const each: Record<string, number[]> = {};
  let seq = 0;
  for (let round = 0; round < Number(a.rounds); round++) {
    for (const mode of senders) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        const p = new RtpPacket(new RtpHeader({ payloadType: 96, sequenceNumber: seq & 0xffff, timestamp: (seq++ * 90) >>> 0, marker: false }), payload);
        if (mode !== "lean" || !leans[0]!.send(p)) void links[0]!.sender.sendRtp(p).catch(() => {});
      }
      await Promise.resolve();
      const c = process.cpuUsage(c0);
      (each[mode] ??= []).push((c.user + c.system) / n);
      await new Promise((r) => setTimeout(r, 300)); // the receiver drains outside the window
    }
  }
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[v.length >> 1]!;
  console.log(JSON.stringify(Object.fromEntries(Object.entries(each).map(([m, v]) => [m, { medianUsPerSend: +median(v).toFixed(1), rounds: v.map((x) => +x.toFixed(1)) }]))));
}

/** The fan-out at --rate for --seconds, each sender in turn: CPU per packet sent + received. */
async function streams(): Promise<void> {
  const results: Record<string, { cores: number; usPerPacket: number }[]> = {};
  for (let round = 0; round < Number(a.rounds); round++) {
    for (const mode of senders) {
      const received0 = links.reduce((s, l) => s + l.received(), back.received());
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const sent = await run(seconds, mode);
      const cpu = process.cpuUsage(cpu0);
      const wall = (performance.now() - t0) / 1000;
      const received = links.reduce((s, l) => s + l.received(), back.received()) - received0;
      const us = cpu.user + cpu.system;
      // Each packet is sent once (encrypt + UDP send) and received once (decrypt + route) in this process.
      const r = { cores: +(us / 1e6 / wall).toFixed(3), usPerPacket: +(us / Math.max(1, received)).toFixed(1) };
      (results[mode] ??= []).push(r);
      console.log(JSON.stringify({ sender: mode, round, receivers, seconds: +wall.toFixed(1), packetsSent: sent, packetsReceived: received, ...r }));
    }
    if (results.werift?.[round] && results.lean?.[round]) console.log(`round ${round}: lean / werift = ${(results.lean[round]!.usPerPacket / results.werift[round]!.usPerPacket).toFixed(2)} (CPU per packet sent + received)`);
  }
}

await run(2);
await (Number(a.burst) > 0 ? bursts(Number(a.burst)) : streams());
for (const l of [...links, back]) l.close();
setTimeout(() => process.exit(0), 500).unref();
