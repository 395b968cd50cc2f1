// An anonymous attacker for the flood test, run as its own process (its CPU is not the server's
// event loop): idle joins in their own rooms, squatters in the call's room, offers with 1,000
// m-lines, long-poll abuse and a WebSocket that never reads, each from its own loopback address
// (127.0.0.x is one host each, so per-address caps apply as they would on the internet).
//   node --import tsx test/support/flood.ts <server url> <call room> <seconds>
// Prints a JSON summary of what the server answered.
import http from "node:http";
import WebSocket from "ws";

const [url = "", callRoom = "call", secondsArg = "10"] = process.argv.slice(2);
const port = Number(new URL(url).port);
const until = Date.now() + Number(secondsArg) * 1000;
const JOINER = "127.0.0.2";
const POLLER = "127.0.0.3";
const NON_READER = "127.0.0.4";
const summary = { wsOpened: 0, wsRefused: 0, joined: 0, refused: {} as Record<string, number>, hugeOffers: 0, offersRefused: 0, longPoll: {} as Record<string, number>, nonReaderClosed: false };
const count = (o: Record<string, number>, k: string) => (o[k] = (o[k] ?? 0) + 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HUGE_OFFER = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-ufrag:x\r\na=fingerprint:sha-256 AA\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n".repeat(1000);

function socket(from: string): Promise<WebSocket | undefined> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { localAddress: from });
    ws.on("open", () => (summary.wsOpened++, resolve(ws)));
    ws.on("unexpected-response", () => (summary.wsRefused++, resolve(undefined)));
    ws.on("error", () => resolve(undefined));
    ws.on("message", (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === "joined") summary.joined++;
      if (m.type === "error") {
        count(summary.refused, m.code);
        if (m.code === "bad_offer") summary.offersRefused++;
      }
    });
  });
}

/** Idle joins in their own rooms and squatters in the call's room, renewed as the server expires them. */
async function joiners(): Promise<void> {
  const open: WebSocket[] = [];
  for (let round = 0; Date.now() < until; round++) {
    for (let i = open.filter((w) => w.readyState === WebSocket.OPEN).length; i < 40; i++) {
      const ws = await socket(JOINER);
      if (!ws) break;
      open.push(ws);
    }
    const live = open.filter((w) => w.readyState === WebSocket.OPEN);
    live.forEach((ws, i) => ws.send(JSON.stringify({ type: "join", room: i < 14 ? callRoom : `idle-${round}-${i}`, name: `ghost${i}` })));
    await sleep(300);
    // Offers with 1,000 m-lines, within the allowed burst.
    for (const ws of live.slice(0, 6)) for (let k = 0; k < 10; k++) (summary.hugeOffers++, ws.send(JSON.stringify({ type: "offer", sdp: HUGE_OFFER })));
    await sleep(2000);
  }
  for (const ws of open) ws.terminate();
}

function request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, method, path, localAddress: POLLER, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", () => resolve({ status: 0, text: "" }));
    req.end(body);
  });
}

/** Long polling: many sessions, out-of-order seqs, absurd seqs, big and deeply nested bodies, competing held GETs. */
async function poller(): Promise<void> {
  const sessions: string[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await request("POST", "/signal");
    count(summary.longPoll, `session ${r.status}`);
    if (r.status === 201) sessions.push(JSON.parse(r.text).session);
  }
  const s = sessions[0];
  if (!s) return;
  for (let seq = 2; seq < 1502 && Date.now() < until; seq++) {
    const r = await request("POST", `/signal/${s}`, JSON.stringify({ seq, message: { type: "media", audio: true, video: true } }));
    count(summary.longPoll, `out-of-order ${r.status}`);
  }
  for (const seq of [1e300, -1, 1.5]) count(summary.longPoll, `seq ${(await request("POST", `/signal/${s}`, JSON.stringify({ seq, message: {} }))).status}`);
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  count(summary.longPoll, `deep ${(await request("POST", `/signal/${s}`, `{"seq":1,"message":${deep}}`)).status}`);
  count(summary.longPoll, `big ${(await request("POST", `/signal/${s}`, JSON.stringify({ seq: 1, message: "x".repeat(128 * 1024) }))).status}`);
  const held = sessions.slice(0, 10).flatMap((id) => [request("GET", `/signal/${id}?after=0`), request("GET", `/signal/${id}?after=0`)]);
  for (const r of await Promise.all(held)) count(summary.longPoll, `held ${r.status}`);
  for (const id of sessions) await request("DELETE", `/signal/${id}`);
}

/** A WebSocket that never reads, sending junk and unsolicited pongs. */
async function nonReader(): Promise<void> {
  const ws = await socket(NON_READER);
  if (!ws) return;
  ws.on("close", () => (summary.nonReaderClosed = true));
  (ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const junk = JSON.stringify({ type: "y".repeat(30) });
  while (Date.now() < until && ws.readyState === WebSocket.OPEN) {
    for (let i = 0; i < 2000; i++) ws.send(junk);
    ws.pong();
    await sleep(100);
  }
  // A paused socket never sees the server's close: resume to learn of it.
  (ws as unknown as { _socket: { resume(): void } })._socket.resume();
  await sleep(500);
  ws.terminate();
}

await Promise.all([joiners(), poller(), nonReader()]);
process.stdout.write(JSON.stringify(summary) + "\n");
process.exit(0);
