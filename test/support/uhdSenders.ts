// Hostile cameras for the decode-budget tests, run as their own process (their CPU is not the
// server's): `count` participants in one room, signaling from one loopback address, each sending
// 3840x2160 VP8 at 30 fps (~10 Mbit/s, fixtures uhd-8m.ivf) and ignoring keyframe requests.
//   node --import tsx test/support/uhdSenders.ts <server url> <room> <count> <seconds> <local address>
// Prints "sending" once all are connected (stdin: "normal", "uhd", "stop"), then {"joined": n, "kbps": each one's video sent, "plis": n, "errors": [...]} when done.
import fs from "node:fs";
import { fixturePaths, PARTICIPANTS, uhdFixturePath } from "../../fixtures/participants.ts";
import { IvfReader } from "../../mixer/ivf.ts";
import { SyntheticParticipant } from "./SyntheticParticipant.ts";

const [url = "", room = "uhd", countArg = "2", secondsArg = "10", localAddress = "127.0.0.2"] = process.argv.slice(2);
const senders: SyntheticParticipant[] = [];
const frameBytes = new IvfReader().push(fs.readFileSync(uhdFixturePath())).map((f) => f.data.length);
let bytes = 0;
let since = 0;
let uhd = true;
let uhdMs = 0;
let uhdSince = 0;
for (let i = 0; i < Number(countArg); i++) {
  const p = new SyntheticParticipant({
    url, room, name: `uhd-${i}`, video: uhdFixturePath(), audio: fixturePaths(PARTICIPANTS[0]!.id, "solid").audio, localAddress, ignorePli: true,
    onVideoSent: (idx) => void (since && uhd && (bytes += frameBytes[idx % frameBytes.length]!)),
  });
  await p.join();
  senders.push(p);
}
process.stdout.write("sending\n");
since = uhdSince = performance.now();
// "normal" on stdin has every camera send an ordinary one (the fixture a browser would: the test's
// baseline windows), "uhd" the 4K again; "stop" ends.
let stopped: () => void = () => {};
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d: string) => {
  for (const line of d.split("\n").map((l) => l.trim())) {
    if (line === "normal" && uhd) (uhd = false), (uhdMs += performance.now() - uhdSince);
    if (line === "uhd" && !uhd) (uhd = true), (uhdSince = performance.now());
    if (line === "normal") senders.forEach((p) => p.switchVideo(fixturePaths(PARTICIPANTS[0]!.id, "pattern").video));
    if (line === "uhd") senders.forEach((p) => p.switchVideo(uhdFixturePath()));
    if (line === "stop") stopped();
  }
});
await new Promise<void>((r) => {
  stopped = r;
  setTimeout(r, Number(secondsArg) * 1000);
});
process.stdin.destroy();
const summary = { joined: senders.length, kbps: Math.round((bytes * 8) / (uhdMs + (uhd ? performance.now() - uhdSince : 0))) / senders.length, plis: senders.reduce((a, p) => a + p.plisReceived, 0), errors: senders.flatMap((p) => p.errors) };
await Promise.all(senders.map((p) => p.close().catch(() => {})));
process.stdout.write(JSON.stringify(summary) + "\n");
process.exit(0);
