// Several media nodes behind one address, found and placed through Redis (REDIS_URL + NODE_URL).
// Every node registers itself and heart-beats its load under a key that expires (NODE_TTL_MS);
// a room lives on exactly one node: the first join places it, atomically, on the least loaded node
// with room (one Lua script: two nodes racing for a room agree on one owner), and every later join,
// whichever node it reaches, is sent there. An owner is its URL and the boot id of the process, so
// a node restarted under the same URL does not inherit rooms it no longer has. Without Redis for a
// moment a node keeps its rooms and takes no new ones.
import { randomUUID } from "node:crypto";
import os from "node:os";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { logger } from "../../telemetry/log.ts";
import { metrics } from "../../telemetry/metrics.ts";
import { KeyedRate } from "../rateLimit.ts";
import type { RevocationStore } from "../revocations.ts";

const log = logger("cluster");
/** A placed room its owner has not opened yet expires after this (a join that never arrives). */
const PLACED_TTL_MS = 15_000;
/** An open room's key lives this long past its owner's last heartbeat. */
const ROOM_TTL_MS = 60_000;

/** A node as the registry knows it. */
export interface NodeRef {
  id: string;
  boot: string;
  url: string;
}

export interface NodeLoad {
  /** Machine CPU in use, 0..1 of all cores, over the last heartbeat. */
  cpu: number;
  rooms: number;
  participants: number;
  /** Composite outputs (codec@rung) encoding, summed over rooms. */
  outputs: number;
}

/** One media worker's load in a heartbeat (MEDIA_WORKERS). */
export interface WorkerStatus {
  index: number;
  /** Its process tree's CPU, in cores. */
  cpuCores: number;
  rooms: number;
  participants: number;
  /** Its overload level (1 and up: it takes no one new). */
  level: number;
}

export interface NodeStatus extends NodeRef, NodeLoad {
  accepting: boolean;
  /** The node's media workers, when it runs them. */
  workers?: WorkerStatus[];
  maxCpu: number;
  maxParticipants: number;
}

/** Why a room could not be placed: the registry is out of reach, or no live node has room. */
export class PlacementError extends Error {
  constructor(
    readonly code: "cluster_unavailable" | "cluster_full",
    message: string,
  ) {
    super(message);
  }
}

// KEYS[1] room key. ARGV: prefix, placed TTL. Returns {id, boot, url} of the owner, placing the room
// on the least loaded live node with room when it has no live owner; nil when no node has room.
const PLACE = `
local P = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur then
  local id, boot = string.match(cur, '^(.*)|([^|]*)$')
  if id then
    local h = redis.call('HMGET', P .. ':node:' .. id, 'boot', 'url')
    if h[1] == boot then return {id, boot, h[2]} end
  end
end
local best, bestBoot, bestUrl, bestScore
for _, id in ipairs(redis.call('SMEMBERS', P .. ':nodes')) do
  local h = redis.call('HMGET', P .. ':node:' .. id, 'boot', 'url', 'cpu', 'participants', 'maxCpu', 'maxParticipants', 'accepting')
  if not h[1] then
    redis.call('SREM', P .. ':nodes', id)
  elseif h[7] == '1' then
    local cpu, n, maxCpu, maxN = tonumber(h[3]), tonumber(h[4]), tonumber(h[5]), tonumber(h[6])
    if cpu <= maxCpu and n < maxN then
      local score = n / maxN + cpu
      if not best or score < bestScore then best, bestBoot, bestUrl, bestScore = id, h[1], h[2], score end
    end
  end
end
if not best then return nil end
redis.call('SET', KEYS[1], best .. '|' .. bestBoot, 'PX', ARGV[2])
-- Counted at once, so rooms placed before the node's next heartbeat spread too.
redis.call('HINCRBY', P .. ':node:' .. best, 'participants', 1)
return {best, bestBoot, bestUrl}
`;

// ARGV: prefix, id, boot, ttl, room ttl, then field/value pairs up to '--', then this node's rooms.
// Registers the node and keeps its rooms' keys; returns the rooms another live node owns now.
const HEARTBEAT = `
local P, id, boot = ARGV[1], ARGV[2], ARGV[3]
local me = id .. '|' .. boot
local key = P .. ':node:' .. id
local fields = {'boot', boot}
local i = 6
while ARGV[i] ~= '--' do
  table.insert(fields, ARGV[i])
  table.insert(fields, ARGV[i + 1])
  i = i + 2
end
redis.call('HSET', key, unpack(fields))
redis.call('PEXPIRE', key, ARGV[4])
redis.call('SADD', P .. ':nodes', id)
local lost = {}
for j = i + 1, #ARGV do
  local rk = P .. ':room:' .. ARGV[j]
  local cur = redis.call('GET', rk)
  local live = false
  if cur and cur ~= me then
    local oid, oboot = string.match(cur, '^(.*)|([^|]*)$')
    live = oid ~= nil and redis.call('HGET', P .. ':node:' .. oid, 'boot') == oboot
  end
  if live then table.insert(lost, ARGV[j]) else redis.call('SET', rk, me, 'PX', ARGV[5]) end
end
return lost
`;

// KEYS[1] room key, ARGV[1] owner value: deletes the key only if this node still owns it.
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

// KEYS[1] node key; ARGV: prefix, id, boot, then this node's rooms: leaves the registry cleanly.
const LEAVE = `
if redis.call('HGET', KEYS[1], 'boot') == ARGV[3] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', ARGV[1] .. ':nodes', ARGV[2])
local me = ARGV[2] .. '|' .. ARGV[3]
for j = 4, #ARGV do
  local rk = ARGV[1] .. ':room:' .. ARGV[j]
  if redis.call('GET', rk) == me then redis.call('DEL', rk) end
end
return 1
`;

/** Machine CPU busy fraction between calls, from the kernel's per-core counters. */
function cpuMeter(): () => number {
  const sample = () => os.cpus().reduce((a, c) => ({ idle: a.idle + c.times.idle, total: a.total + c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle }), { idle: 0, total: 0 });
  let last = sample();
  return () => {
    const now = sample();
    const total = now.total - last.total;
    const busy = total > 0 ? 1 - (now.idle - last.idle) / total : 0;
    last = now;
    return Math.max(0, Math.min(1, busy));
  };
}

export interface LocalState {
  load: Omit<NodeLoad, "cpu">;
  rooms: string[];
  /** Overloaded (overload level 1 and up): reported as full, so new rooms are placed on other nodes. */
  busy?: boolean;
  workers?: WorkerStatus[];
}

/** The workers field of a heartbeat; what cannot be read is left out. */
function parseWorkers(raw: string): WorkerStatus[] | undefined {
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) ? (v as WorkerStatus[]) : undefined;
  } catch {
    return undefined;
  }
}

export class Cluster {
  readonly self: NodeRef;
  private readonly redis: Redis;
  private readonly prefix: string;
  private timer: NodeJS.Timeout | undefined;
  private lastBeat = -Infinity;
  private accepting = true;
  private closed = false;
  private readonly cpu = cpuMeter();
  /** Redis commands this node sent (for the README's figures and /metrics). */
  commands = 0;
  /** Joins this node may place per client address: 20 at once, then one a second. */
  readonly placements = new KeyedRate(1, 20);

  /** A node of the cluster; ioredis is loaded only here (the embedded default never loads it). */
  static async create(config: Config & { nodeUrl: string; redisUrl: string }, local: () => LocalState): Promise<Cluster> {
    const { Redis } = await import("ioredis");
    return new Cluster(config, local, Redis);
  }

  private constructor(
    private readonly config: Config & { nodeUrl: string; redisUrl: string },
    private readonly local: () => LocalState,
    RedisClient: typeof Redis,
  ) {
    this.self = { id: config.nodeUrl, boot: randomUUID().slice(0, 8), url: config.nodeUrl };
    this.prefix = config.clusterPrefix;
    // Commands fail at once while Redis is away (no queue to replay stale placements from).
    this.redis = new RedisClient(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    this.redis.on("error", (err) => log.debug("redis connection error", { error: err.message }));
    this.redis.defineCommand("mcuPlace", { numberOfKeys: 1, lua: PLACE });
    this.redis.defineCommand("mcuBeat", { numberOfKeys: 0, lua: HEARTBEAT });
    this.redis.defineCommand("mcuRelease", { numberOfKeys: 1, lua: RELEASE });
    this.redis.defineCommand("mcuLeave", { numberOfKeys: 1, lua: LEAVE });
  }

  private counted(): void {
    this.commands++;
    metrics.clusterCommands.inc();
  }

  private call<T>(name: string, ...args: (string | number)[]): Promise<T> {
    this.counted();
    return (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<T>>)[name]!(...args);
  }

  private get me(): string {
    return `${this.self.id}|${this.self.boot}`;
  }

  private roomKey(room: string): string {
    return `${this.prefix}:room:${room}`;
  }

  /** Connects and registers; the node serves even if Redis is not there yet (it registers when it is). */
  async start(): Promise<void> {
    await this.redis.connect().catch((err) => log.warn("redis not reachable yet; taking no new rooms until it is", { error: (err as Error).message }));
    await this.beat();
    this.timer = setInterval(() => void this.beat(), this.config.nodeHeartbeatMs);
    this.timer.unref();
  }

  /** True while the registration is fresh: this node may place rooms. */
  get healthy(): boolean {
    return performance.now() - this.lastBeat < this.config.nodeTtlMs;
  }

  private async beat(): Promise<void> {
    if (this.closed) return;
    const { load, rooms, busy, workers } = this.local();
    const fields: Record<string, string | number> = {
      url: this.self.url, cpu: (busy ? 2 : this.cpu()).toFixed(3), rooms: load.rooms, participants: load.participants, outputs: load.outputs,
      maxCpu: this.config.nodeMaxCpu, maxParticipants: this.config.nodeMaxParticipants, accepting: this.accepting ? 1 : 0,
      ...(workers ? { workers: JSON.stringify(workers) } : {}),
    };
    try {
      const lost = await this.call<string[]>("mcuBeat", this.prefix, this.self.id, this.self.boot, this.config.nodeTtlMs, ROOM_TTL_MS, ...Object.entries(fields).flat(), "--", ...rooms);
      if (!this.healthy) log.info("registered", { node: this.self.id, boot: this.self.boot });
      this.lastBeat = performance.now();
      // Two copies of a room after a split (Redis lost long enough for another node to take it):
      // said loudly; this copy runs on until it empties (see the README, Scaling out).
      if (lost.length) log.warn("rooms held here are owned by another live node (this node was cut off from Redis)", { rooms: lost });
    } catch (err) {
      if (this.healthy) log.warn("heartbeat failed; no new rooms until Redis answers", { error: (err as Error).message });
    }
  }

  /** The owner of `room`, placing it when it has none; throws PlacementError. */
  async place(room: string): Promise<NodeRef> {
    if (!this.healthy || !this.accepting) throw new PlacementError("cluster_unavailable", "this node cannot reach the room registry just now; try again in a moment");
    let got: [string, string, string] | null;
    try {
      got = await this.call<[string, string, string] | null>("mcuPlace", this.roomKey(room), this.prefix, PLACED_TTL_MS);
    } catch (err) {
      throw new PlacementError("cluster_unavailable", `the room registry did not answer: ${(err as Error).message}`);
    }
    if (!got) {
      const nodes = await this.nodes().catch(() => []);
      log.warn("no node has room for a new room", { room, nodes: nodes.map((n) => ({ url: n.url, accepting: n.accepting, cpu: n.cpu, participants: n.participants, maxCpu: n.maxCpu, maxParticipants: n.maxParticipants })) });
      throw new PlacementError("cluster_full", "every media node is at its capacity; try again later");
    }
    return { id: got[0], boot: got[1], url: got[2] };
  }

  /** The live owner of `room`, if it has one (nothing is placed). */
  async ownerOf(room: string): Promise<NodeRef | undefined> {
    this.counted();
    const cur = await this.redis.get(this.roomKey(room));
    const m = cur ? /^(.*)\|([^|]*)$/.exec(cur) : null;
    if (!m) return undefined;
    const node = await this.node(m[1]!);
    return node && node.boot === m[2] ? node : undefined;
  }

  isSelf(n: NodeRef): boolean {
    return n.id === this.self.id && n.boot === this.self.boot;
  }

  private async node(id: string): Promise<NodeStatus | undefined> {
    this.counted();
    const h = await this.redis.hgetall(`${this.prefix}:node:${id}`);
    if (!h.boot) return undefined;
    return {
      id, boot: h.boot, url: h.url ?? id, cpu: Number(h.cpu), rooms: Number(h.rooms), participants: Number(h.participants), outputs: Number(h.outputs),
      accepting: h.accepting === "1", maxCpu: Number(h.maxCpu), maxParticipants: Number(h.maxParticipants),
      ...(h.workers ? { workers: parseWorkers(h.workers) } : {}),
    };
  }

  /** Every live node with its last heartbeat. */
  async nodes(): Promise<NodeStatus[]> {
    this.counted();
    const ids = await this.redis.smembers(`${this.prefix}:nodes`);
    const all = await Promise.all(ids.map((id) => this.node(id)));
    return all.filter((n): n is NodeStatus => !!n).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Whether the node that wrote `owner` (id and boot) still runs. */
  async alive(owner: { id: string; boot: string }): Promise<boolean> {
    const n = await this.node(owner.id);
    return n?.boot === owner.boot;
  }

  /** Takes `what` for `ms` if nobody has it: true for exactly one caller across the cluster. */
  async claim(what: string, ms: number): Promise<boolean> {
    this.counted();
    return (await this.redis.set(`${this.prefix}:claim:${what}`, this.me, "PX", ms, "NX")) === "OK";
  }

  /** A room closed here: its key goes (if still ours), so its next join is placed afresh. */
  release(room: string): void {
    if (this.closed) return;
    this.call("mcuRelease", this.roomKey(room), this.me).catch(() => {});
  }

  private subscriber: Redis | undefined;
  private readonly revokedHandlers: ((tokenId: string, untilS: number) => void)[] = [];

  /** Room-token revocations shared by every node: a key per token until it expires, and a channel. */
  revocationStore(): RevocationStore {
    const channel = `${this.prefix}:revocations`;
    return {
      revoke: async (tokenId, untilS) => {
        this.counted();
        await this.redis.set(`${this.prefix}:revoked:${tokenId}`, "1", "EXAT", Math.ceil(untilS));
        this.counted();
        await this.redis.publish(channel, JSON.stringify({ tokenId, untilS }));
      },
      isRevoked: async (tokenId) => {
        this.counted();
        // Without Redis a revoked token must not slip in: the join fails (cluster_unavailable).
        return (await this.redis.exists(`${this.prefix}:revoked:${tokenId}`)) === 1;
      },
      onRevoked: (f) => {
        this.revokedHandlers.push(f);
        if (this.subscriber) return;
        // A connection of its own (a subscribed one takes no other commands); it resubscribes after a reconnect.
        const sub = (this.subscriber = this.redis.duplicate({ enableOfflineQueue: true, lazyConnect: false }));
        sub.on("error", (err) => log.debug("redis subscriber error", { error: err.message }));
        sub.subscribe(channel).catch((err) => log.warn("could not subscribe to token revocations", { error: (err as Error).message }));
        sub.on("message", (_ch: string, raw: string) => {
          try {
            const { tokenId, untilS } = JSON.parse(raw) as { tokenId: string; untilS: number };
            if (typeof tokenId === "string" && typeof untilS === "number") for (const h of this.revokedHandlers) h(tokenId, untilS);
          } catch {
            log.warn("malformed token revocation message ignored", { raw: raw.slice(0, 200) });
          }
        });
      },
    };
  }

  /** Shutting down: no new rooms from now on. */
  drain(): void {
    this.accepting = false;
    void this.beat();
  }

  /** Leaves the registry (its rooms' keys with it) and disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    await this.call("mcuLeave", `${this.prefix}:node:${this.self.id}`, this.prefix, this.self.id, this.self.boot, ...this.local().rooms).catch(() => {});
    this.redis.disconnect();
    this.subscriber?.disconnect();
  }
}
