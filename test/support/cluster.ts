// Media nodes of one cluster for tests: server processes on their own ports in one Redis registry,
// sharing one recordings folder, and participants that rejoin the way the page does.
import fs from "node:fs/promises";
import net from "node:net";
import { fixturePaths, participant } from "../../fixtures/participants.ts";
import { api, REDIS_URL, tempDir } from "./recordingApi.ts";
import { sleep, tileColors, waitFor } from "./call.ts";
import { startServerProcess, type ChildService } from "./serverProcess.ts";
import { SyntheticParticipant } from "./SyntheticParticipant.ts";

const children: ChildService[] = [];
/** One shared RECORDINGS_DIR per cluster, as a deployment has. */
export const dirs: Record<string, string> = {};
const made: Record<string, Promise<string>> = {};

/** Kills every node started and removes the clusters' folders. */
export async function stopAllNodes(): Promise<void> {
  for (const c of children.splice(0)) await c.killGroup();
  for (const [k, d] of Object.entries(dirs)) {
    await fs.rm(d, { recursive: true, force: true });
    delete dirs[k];
    delete made[k];
  }
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", () => r()));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Node extends ChildService {
  port: number;
}

/** One media node of the cluster `prefix`, announcing http://127.0.0.1:<port>. */
export async function startNode(prefix: string, env: Record<string, string> = {}, port?: number): Promise<Node> {
  const dir = await (made[prefix] ??= tempDir(prefix).then((d) => (dirs[prefix] = d)));
  const p = port ?? (await freePort());
  const s = await startServerProcess({
    REDIS_URL, CLUSTER_PREFIX: prefix, QUEUE_PREFIX: prefix, RECORDINGS_DIR: dir, NODE_URL: `http://127.0.0.1:${p}`, PORT: String(p),
    // One machine runs every node here: CPU is shared, so placement goes by participants. Every
    // client is 127.0.0.1: the per-address caps must not count the test out.
    NODE_MAX_CPU: "1", MAX_ROOMS_PER_IP: "64", MAX_JOINS_PER_IP: "64", MAX_CONNECTIONS_PER_IP: "64", ...env,
  });
  children.push(s);
  return Object.assign(s, { port: p });
}

export async function nodesSeen(base: string, headers: Record<string, string> = {}): Promise<{ url: string; boot: string; participants: number }[]> {
  return (await api(base, "GET", "/api/nodes", headers)).json.nodes;
}

/** Waits until `base` lists `n` nodes (`headers`: the API token, where the nodes have one). */
export async function waitForNodes(base: string, n: number, headers: Record<string, string> = {}): Promise<void> {
  await waitFor(`${n} nodes registered`, async () => (await nodesSeen(base, headers)).length === n, 15_000);
}

/**
 * A participant as the page behaves behind a load balancer: on a drop it joins again through the
 * one address it knows, which the balancer sends to the next node (round robin over `entries`).
 */
export function reconnecting(entries: string[], room: string, name: string): { current: () => SyntheticParticipant; stop: () => Promise<void> } {
  let current: SyntheticParticipant;
  let stopped = false;
  let turn = Math.floor(Math.random() * entries.length);
  const start = async (): Promise<void> => {
    while (!stopped) {
      const entry = entries[turn++ % entries.length]!;
      const p = new SyntheticParticipant({ url: entry, room, name, ...fixturePaths(name, "solid"), decode: true });
      current = p;
      try {
        await p.join();
        await new Promise<void>((r) => p.ws.once("close", () => r()));
        await p.close().catch(() => {});
      } catch {
        await p.close().catch(() => {});
      }
      await sleep(500);
    }
  };
  const first = start();
  return {
    current: () => current,
    stop: async () => {
      stopped = true;
      await current?.close().catch(() => {});
      void first;
    },
  };
}

/** `p`'s composite shows exactly these participants' colours, in any order (joins raced). */
export function tilesShow(p: SyntheticParticipant, ids: string[]): boolean {
  if (!p.latestFrame) return false;
  const want = ids.map((id) => participant(id).color.name).sort();
  return tileColors(p, ids.length).sort().join() === want.join();
}

