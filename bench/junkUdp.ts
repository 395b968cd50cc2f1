// What one junk datagram on an ICE port costs this process, in µs of CPU: a quarter each of random
// bytes, STUN requests with unknown usernames, DTLS records and RTP (test/support/udpSpray.ts, its
// own process), aimed in turn, in interleaved windows, at
//   bare      a plain dgram socket that only counts (Node's own cost to receive: the baseline);
//   werift    a werift answerer's ICE socket as werift opens it (before the gate);
//   gate      the same behind server/iceGate.ts, not yet connected (ICE still checking);
//   connected the same once ICE selected a pair: connect()ed, so the kernel drops strangers.
// Run: npm run bench:junk-udp [-- --pps 20000 --seconds 5 --rounds 2]
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import path from "node:path";
import { parseArgs } from "node:util";
import { MediaStreamTrack, RTCPeerConnection } from "werift";
import { guardIce } from "../server/iceGate.ts";
import { ROOT } from "./server.ts";

const { values: a } = parseArgs({ options: {
  pps: { type: "string", default: "20000" },
  seconds: { type: "string", default: "5" },
  rounds: { type: "string", default: "2" },
} });
const pps = Number(a.pps);
const seconds = Number(a.seconds);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A werift answerer that has gathered and answered, whose offerer never takes the answer: its IPv4 ICE socket. */
async function answerer(gated: boolean): Promise<{ port: number; socket: dgram.Socket; close: () => Promise<void> }> {
  const offerer = new RTCPeerConnection({});
  offerer.addTransceiver(new MediaStreamTrack({ kind: "audio" }), { direction: "sendrecv" });
  await offerer.setLocalDescription(await offerer.createOffer());
  const pc = new RTCPeerConnection({});
  await pc.setRemoteDescription(offerer.localDescription!);
  if (gated) guardIce(pc.iceTransports.map((t) => t.connection as never), { stunPerSecond: 50, stunBurst: 100, participant: "bench" });
  await pc.setLocalDescription(await pc.createAnswer());
  const protocols = (pc.iceTransports[0]!.connection as unknown as { protocols: { transport: { socket: dgram.Socket; socketType: string } }[] }).protocols;
  const v4 = protocols.find((p) => p.transport.socketType === "udp4")!.transport.socket;
  return { port: v4.address().port, socket: v4, close: async () => void (await Promise.all([pc.close(), offerer.close()])) };
}

const bare = dgram.createSocket("udp4");
let bareCount = 0;
bare.on("message", () => bareCount++);
await new Promise<void>((r) => bare.bind(0, "127.0.0.1", () => r()));
const werift = await answerer(false);
const gate = await answerer(true);
const connected = await answerer(true);
await new Promise<void>((r) => connected.socket.connect(9, "127.0.0.1", () => r())); // as selectPair does

const targets: Record<string, number> = { bare: bare.address().port, werift: werift.port, gate: gate.port, connected: connected.port };
const spray = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "test/support/udpSpray.ts"), String(targets.bare), String(targets.bare), String(pps), "600"], { stdio: ["pipe", "pipe", "inherit"] });
let out = "";
spray.stdout.on("data", (d: Buffer) => (out += d.toString()));
while (!out.includes("ready")) await sleep(50);

const rows: Record<string, number[]> = { bare: [], werift: [], gate: [], connected: [] };
for (let round = 0; round < Number(a.rounds); round++) {
  for (const name of Object.keys(targets)) {
    spray.stdin.write(`${targets[name]} ${targets[name]}\n`);
    await sleep(500);
    const c0 = process.cpuUsage();
    const n0 = bareCount;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const c = process.cpuUsage(c0);
    const wallS = (performance.now() - t0) / 1000;
    // Packets sent at the target in the window (the bare socket's count checks the sprayer's rate).
    const packets = name === "bare" ? bareCount - n0 : pps * wallS;
    rows[name]!.push((c.user + c.system) / packets);
  }
}
spray.stdin.write("stop\n");
await new Promise((r) => spray.once("exit", r));
const base = rows.bare!.reduce((x, y) => x + y, 0) / rows.bare!.length;
console.log(`junk UDP at ${pps} packets/s, ${seconds} s windows, ${a.rounds} rounds interleaved; CPU of this process per junk datagram`);
console.log("| socket | µs per datagram | × bare receive | cores at 20,000/s |");
console.log("|---|---|---|---|");
for (const [name, xs] of Object.entries(rows)) {
  const us = xs.reduce((x, y) => x + y, 0) / xs.length;
  console.log(`| ${name} | ${us.toFixed(2)} | ${(us / base).toFixed(2)} | ${((us * 20_000) / 1e6).toFixed(3)} |`);
}
await Promise.all([werift.close(), gate.close(), connected.close()]);
bare.close();
process.exit(0);
