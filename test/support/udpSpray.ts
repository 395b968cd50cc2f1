// An outside attacker who never joins: junk UDP at the server's whole ICE port range, from its own
// loopback address, run as its own process. A quarter each of random bytes, STUN binding requests
// with unknown usernames (and a made-up MESSAGE-INTEGRITY), DTLS handshake records and RTP packets.
//   node --import tsx test/support/udpSpray.ts <first port> <last port> <packets/s> <seconds> [host]
// Prints "ready" once its socket is bound and {"sent": n, "errors": n, "seconds": s} when done. A
// line "<first port> <last port>" on its stdin moves the spray to other ports (the tests alternate
// between the server's range and ports nobody listens on, for a baseline of the same load), and
// "stop" ends it early.
import { randomBytes } from "node:crypto";
import dgram from "node:dgram";

const [loArg = "0", hiArg = "0", ppsArg = "20000", secondsArg = "10", host = "127.0.0.1"] = process.argv.slice(2);
let lo = Number(loArg);
let hi = Number(hiArg);
let port = lo;
let stopped = false;
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d: string) => {
  for (const line of d.split("\n")) {
    const m = /^(\d+) (\d+)$/.exec(line.trim());
    if (m) [lo, hi, port] = [Number(m[1]), Number(m[2]), Number(m[1])];
    if (line.trim() === "stop") stopped = true;
  }
});
const pps = Number(ppsArg);
const seconds = Number(secondsArg);
const FROM = "127.0.0.9";

function stunRequest(): Buffer {
  const user = Buffer.from(`${randomBytes(3).toString("hex")}:${randomBytes(3).toString("hex")}`);
  const userAttr = Buffer.alloc(4 + ((user.length + 3) & ~3));
  userAttr.writeUInt16BE(0x0006, 0);
  userAttr.writeUInt16BE(user.length, 2);
  user.copy(userAttr, 4);
  const mi = Buffer.alloc(24);
  mi.writeUInt16BE(0x0008, 0);
  mi.writeUInt16BE(20, 2);
  randomBytes(20).copy(mi, 4);
  const head = Buffer.alloc(20);
  head.writeUInt16BE(0x0001, 0);
  head.writeUInt16BE(userAttr.length + mi.length, 2);
  head.writeUInt32BE(0x2112a442, 4);
  randomBytes(12).copy(head, 8);
  return Buffer.concat([head, userAttr, mi]);
}

function dtlsRecord(): Buffer {
  const b = randomBytes(120);
  b[0] = 22; // handshake
  b[1] = 0xfe;
  b[2] = 0xfd; // DTLS 1.2
  b.writeUInt16BE(107, 11);
  return b;
}

function rtpPacket(): Buffer {
  const b = randomBytes(200);
  b[0] = 0x80;
  b[1] = 96;
  return b;
}

function junk(): Buffer {
  const b = randomBytes(64 + Math.floor(Math.random() * 200));
  b[0] = 64 + Math.floor(Math.random() * 64); // neither STUN, DTLS, TURN channel nor RTP
  return b;
}

const makers = [junk, stunRequest, dtlsRecord, rtpPacket];
const socket = dgram.createSocket("udp4");
socket.on("error", () => {});
await new Promise<void>((r) => socket.bind(0, FROM, () => r()));
let sent = 0;
let errors = 0;
process.stdout.write("ready\n");
const t0 = Date.now();
const until = t0 + seconds * 1000;
// A pool of packets made beforehand: the spray's own CPU goes to sending, not to randomBytes.
const pool = Array.from({ length: 4096 }, (_, i) => makers[i % makers.length]!());
while (Date.now() < until && !stopped) {
  const due = Math.floor(((Date.now() - t0) / 1000) * pps);
  while (sent < due) {
    socket.send(pool[Math.floor(Math.random() * pool.length)]!, port, host, (err) => err && errors++);
    sent++;
    port = port >= hi ? lo : port + 1;
  }
  await new Promise((r) => setTimeout(r, 5));
}
await new Promise((r) => setTimeout(r, 200));
socket.close();
process.stdin.destroy();
process.stdout.write(JSON.stringify({ sent, errors, seconds: (Date.now() - t0) / 1000 }) + "\n");
