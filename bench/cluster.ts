// What several nodes cost a join: two server processes in one Redis registry, signaling only (no
// media). A join that reaches the room's own node is the baseline; a join that reaches the other
// node is redirected and joins again at the owner. Also counted: Redis commands per join and per
// heartbeat, as the nodes send them (round trips) and as Redis runs them (INFO commandstats,
// commands inside the Lua scripts included).
// Usage: npm run bench:cluster -- [--joins 30]   (needs Redis: REDIS_URL, default redis://127.0.0.1:6379)
import { Redis } from "ioredis";
import WebSocket from "ws";
import { startServerProcess, type ServerProcess } from "./server.ts";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : def;
};
const JOINS = Number(arg("joins", "30"));
const REDIS_URL = process.env.REDIS_URL || "redis://127.0.0.1:6379";

/** Opens a WebSocket to `url`, sends join, follows a redirect; resolves with ms to `joined` and the node. */
async function join(url: string, room: string, name: string, from: string): Promise<{ ms: number; node: string; hops: number; close: () => void }> {
  const t0 = performance.now();
  for (let hops = 0, at = url; hops < 3; hops++) {
    // Each room's clients come from their own loopback address, as different users would (a node
    // places at most 20 rooms at once per address).
    const ws = new WebSocket(at.replace(/^http/, "ws") + "/ws", { localAddress: from });
    await new Promise((res, rej) => ws.once("open", res).once("error", rej));
    const reply = await new Promise<any>((res) => {
      ws.on("message", (d) => {
        const m = JSON.parse(d.toString());
        if (["joined", "redirect", "error"].includes(m.type)) res(m);
      });
      ws.send(JSON.stringify({ type: "join", room, name }));
    });
    if (reply.type === "joined") return { ms: performance.now() - t0, node: at, hops, close: () => ws.close() };
    ws.close();
    if (reply.type !== "redirect") throw new Error(`join refused: ${JSON.stringify(reply)}`);
    at = reply.url;
  }
  throw new Error("redirected too often");
}

async function executed(redis: Redis): Promise<number> {
  const info = await redis.info("commandstats");
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) if (!["info", "ping"].includes(m[1]!)) n += Number(m[2]);
  return n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sentBy = async (nodes: ServerProcess[]) => (await Promise.all(nodes.map((n) => n.metrics()))).reduce((s, m) => s + (m.mcu_cluster_redis_commands_total ?? 0), 0);

async function main(): Promise<void> {
  const prefix = `mixroom-bench-${process.pid}`;
  const redis = new Redis(REDIS_URL);
  const nodes = [await startServerProcess({ size: "640x360", maxParticipants: 16, cluster: { redisUrl: REDIS_URL, prefix } }), await startServerProcess({ size: "640x360", maxParticipants: 16, cluster: { redisUrl: REDIS_URL, prefix } })];
  try {
    await new Promise((r) => setTimeout(r, 1500)); // both registered

    // Heartbeats: an idle window, nothing else going on.
    const idleS = 5;
    const [e0, s0] = [await executed(redis), await sentBy(nodes)];
    await new Promise((r) => setTimeout(r, idleS * 1000));
    const [e1, s1] = [await executed(redis), await sentBy(nodes)];
    const beats = (idleS * nodes.length * 1000) / 1000; // NODE_HEARTBEAT_MS default 1000

    const direct: number[] = [];
    const via: number[] = [];
    let firstSent = 0;
    let firstExec = 0;
    let laterSent = 0;
    let laterExec = 0;
    for (let k = 0; k < JOINS; k++) {
      const room = `bench${k}`;
      let [ea, sa] = [await executed(redis), await sentBy(nodes)];
      const from = `127.0.0.${2 + (k % 250)}`;
      const first = await join(nodes[k % 2]!.url, room, "a", from);
      let [eb, sb] = [await executed(redis), await sentBy(nodes)];
      firstSent += sb - sa;
      firstExec += eb - ea;
      const owner = first.node;
      const other = nodes.find((n) => n.url !== owner)!.url;
      [ea, sa] = [eb, sb];
      const d = await join(owner, room, "b", from);
      const v = await join(other, room, "c", from);
      [eb, sb] = [await executed(redis), await sentBy(nodes)];
      laterSent += (sb - sa) / 2;
      laterExec += (eb - ea) / 2;
      direct.push(d.ms);
      via.push(v.ms);
      for (const j of [first, d, v]) j.close();
      await new Promise((r) => setTimeout(r, 50));
    }
    const md = median(direct);
    const mv = median(via);
    console.log(`\nCluster: 2 nodes, ${JOINS} rooms, signaling only (loopback). Rerun: npm run bench:cluster -- --joins ${JOINS}\n`);
    console.log("| | median ms | vs direct |");
    console.log("|---|---|---|");
    console.log(`| join at the room's node (baseline) | ${md.toFixed(1)} | 1.00 |`);
    console.log(`| join at the other node (redirect + join again) | ${mv.toFixed(1)} | ${(mv / md).toFixed(2)} |`);
    console.log(`\nextra join latency through a second node: ${(mv - md).toFixed(1)} ms (median)\n`);
    console.log("| Redis commands | sent by the nodes | run by Redis |");
    console.log("|---|---|---|");
    console.log(`| per heartbeat | ${((s1 - s0) / beats).toFixed(2)} | ${((e1 - e0) / beats).toFixed(1)} |`);
    console.log(`| per first join of a room (placement) | ${(firstSent / JOINS).toFixed(2)} | ${(firstExec / JOINS).toFixed(1)} |`);
    console.log(`| per later join (at the owner or redirected) | ${(laterSent / JOINS).toFixed(2)} | ${(laterExec / JOINS).toFixed(1)} |`);
    console.log("\n(run by Redis: every command, those inside the Lua scripts included, heartbeats of the window too)");
  } finally {
    for (const n of nodes) await n.stop();
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  }
}

await main();
