// Several media nodes behind one address (REDIS_URL + NODE_URL): real server processes on their own
// ports, real Redis, real werift peers. A room lives on one node whichever node its joins reach;
// two nodes racing for a room agree; rooms spread by load; a node killed with SIGKILL loses its rooms
// to a live node within 10 s and its recording is finalized exactly once by one survivor; a node
// restarted under the same URL rejoins the registry; a node cut off from Redis keeps its rooms.
import fs from "node:fs/promises";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateFixtures } from "../../fixtures/generate.ts";
import type { RunningServer } from "../../server/main.ts";
import { closeAll, joinAll, longestGap, sleep, waitFor, waitForTiles } from "../support/call.ts";
import { dirs, nodesSeen, reconnecting, startNode, stopAllNodes, tilesShow, waitForNodes, type Node } from "../support/cluster.ts";
import { RawClient } from "../support/rawClient.ts";
import { api, REDIS_URL, startRecording, uniquePrefix, waitUntilDone } from "../support/recordingApi.ts";

beforeAll(() => generateFixtures());
afterAll(() => stopAllNodes());

const at = (node: { url: string }) => ({ url: node.url }) as RunningServer;
const raw = (o: { url: string }) => new RawClient(o.url).open();

describe("two nodes", () => {
  const prefix = uniquePrefix("cluster2");
  let a: Node;
  let b: Node;
  beforeAll(async () => {
    [a, b] = await Promise.all([startNode(prefix, { NODE_MAX_PARTICIPANTS: "3" }), startNode(prefix, { NODE_MAX_PARTICIPANTS: "3" })]);
    await waitForNodes(a.url, 2);
  }, 60_000);

  it("puts two participants whose signaling lands on different nodes in one room, on one node", async () => {
    const [p0] = await joinAll(at(a), "meet", ["p0"]);
    const [p1] = await joinAll(at(b), "meet", ["p1"]);
    try {
      expect(p1.node, "both ended on the room's node").toBe(p0.node);
      for (const p of [p0, p1]) await waitForTiles(p, ["p0", "p1"]);
      // The API answers from either node: the list names the room's node, and a room request is
      // passed to the node that has the room.
      const other = p0.node === a.url ? b : a;
      const listed = (await api(other.url, "GET", "/api/rooms")).json.find((r: { id: string }) => r.id === "meet");
      expect(listed).toMatchObject({ node: p0.node });
      expect(listed.participants.map((x: { name: string }) => x.name).sort()).toEqual(["p0", "p1"]);
      const put = await fetch(`${other.url}/api/rooms/meet/layout`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ layout: "speaker" }) });
      expect(put.status).toBe(200);
      expect((await put.json()).layout).toBe("speaker");
    } finally {
      await closeAll([p0, p1]);
    }
  });

  it("agrees on one owner when both nodes take the first join of a room at once", async () => {
    for (let k = 0; k < 6; k++) {
      // A placement counts against its node at once (NODE_MAX_PARTICIPANTS=3 here) until the next
      // heartbeat reports the real count: start each race on empty nodes.
      await waitFor("both nodes empty in the registry", async () => (await nodesSeen(a.url)).every((n) => n.participants === 0), 5000);
      const room = `race${k}`;
      const [ca, cb] = await Promise.all([raw(a), raw(b)]);
      try {
        const [ra, rb] = await Promise.all([ca.ask({ type: "join", room, name: "x" }, ["joined", "redirect", "error"]), cb.ask({ type: "join", room, name: "y" }, ["joined", "redirect", "error"])]);
        const owner = (r: { type: string; url?: string }, self: Node) => (r.type === "joined" ? self.url : r.type === "redirect" ? r.url : JSON.stringify(r));
        expect(owner(ra, a), room).toBe(owner(rb, b));
      } finally {
        ca.close();
        cb.close();
      }
    }
  });

  it("lets one address place only so many new rooms (before any token or seat), beside a running call, while others still can", async () => {
    await waitFor("both nodes empty in the registry", async () => (await nodesSeen(a.url)).every((n) => n.participants === 0), 5000);
    const call = await joinAll(at(a), "beside", ["p0", "p1"]);
    const hostile = await new RawClient(a.url, "127.0.0.9").open();
    const replies: string[] = [];
    try {
      for (const p of call) await waitForTiles(p, ["p0", "p1"]);
      const t0 = performance.now();
      try {
        for (let k = 0; k < 40; k++) {
          const r = await hostile.ask({ type: "join", room: `squat${k}`, name: "x" }, ["joined", "redirect", "error"]);
          replies.push(r.type === "error" ? r.code : r.type);
          if (r.type === "joined") hostile.ws.send(JSON.stringify({ type: "leave" }));
        }
      } finally {
        hostile.close();
      }
      // At most the burst got through (placed, or refused as full while its own reservations held
      // the nodes); the rest were refused before touching the registry.
      // (The bucket refills at one a second, so a late one may pass again.)
      expect(replies.filter((r) => r !== "rate_limited").length, replies.join()).toBeLessThanOrEqual(23);
      expect(replies.filter((r) => r === "rate_limited").length, replies.join()).toBeGreaterThanOrEqual(15);
      // The call beside it went on.
      for (const p of call) expect(longestGap(p, t0), `${p.participantId} frames through the flood`).toBeLessThan(1000);
      for (const p of call) await waitForTiles(p, ["p0", "p1"]);
      // Another address places its room (at once, or once the next heartbeat drops the flood's reservations).
      await waitFor("another address places a room", async () => {
        const other = await new RawClient(a.url, "127.0.0.10").open();
        try {
          return (await other.ask({ type: "join", room: "fresh", name: "y" }, ["joined", "redirect", "error"])).type !== "error";
        } finally {
          other.close();
        }
      }, 5000);
    } finally {
      await closeAll(call);
    }
  });

  it("places a new room on the node with room: the full node's next room goes to the other", async () => {
    // NODE_MAX_PARTICIPANTS=3: fill whichever node gets "full1", then a new room goes elsewhere.
    // (Placements count at once; the heartbeat then sets the real count: wait for the empty nodes.)
    await waitFor("both nodes empty in the registry", async () => (await nodesSeen(a.url)).every((n) => n.participants === 0), 5000);
    const first = await joinAll(at(a), "full1", ["p0", "p1", "p2"]).catch((err) => {
      throw new Error(`${(err as Error).message}\n${a.log().split("\n").filter((l) => l.includes("no node has room")).join("\n")}`);
    });
    const fullNode = first[0]!.node;
    const otherNode = fullNode === a.url ? b.url : a.url;
    try {
      await waitFor("the heartbeat counts the three", async () => (await nodesSeen(a.url)).find((n) => n.url === fullNode)?.participants === 3, 5000);
      for (const room of ["next1", "next2"]) {
        const c = await new RawClient(fullNode).open();
        try {
          expect(await c.ask({ type: "join", room, name: "z" }, ["joined", "redirect"]), room).toMatchObject({ type: "redirect", url: otherNode });
        } finally {
          c.close();
        }
      }
    } finally {
      await closeAll(first);
    }
  });
});

describe("a node killed with SIGKILL", () => {
  it("loses its room to a live node within 10 s, and one survivor finalizes its recording once", async () => {
    const prefix = uniquePrefix("cluster3");
    const nodes = await Promise.all([startNode(prefix), startNode(prefix), startNode(prefix)]);
    await waitForNodes(nodes[0]!.url, 3);
    const ids = ["p0", "p1", "p2"];
    const ps = ids.map((id) => reconnecting(nodes.map((n) => n.url), "phoenix", id));
    try {
      await waitFor("all three joined", () => ps.every((p) => p.current()?.participantId), 20_000);
      const ownerUrl = ps[0]!.current().node;
      for (const p of ps) expect(p.current().node).toBe(ownerUrl);
      await waitFor("everyone sees the three", () => ps.every((p) => tilesShow(p.current(), ids)), 15_000);
      const owner = nodes.find((n) => n.url === ownerUrl)!;
      const bootBefore = (await nodesSeen(ownerUrl)).find((n) => n.url === ownerUrl)!.boot;
      const survivors = nodes.filter((n) => n !== owner);
      // Started through another node: passed to the owner.
      const { id } = await startRecording(survivors[0]!.url, "phoenix");
      await sleep(3000);
      // While its node lives, nobody else touches it.
      expect(JSON.parse(await fs.readFile(`${dirs[prefix]}/${id}/recording.json`, "utf8")).status).toBe("recording");

      await owner.killGroup();
      const killedAt = performance.now();
      await waitFor("everyone back in a mixed call on a live node", async () => {
        const now = ps.map((p) => p.current());
        if (!now.every((p) => p?.participantId && p.node !== ownerUrl && p.node === now[0]!.node)) return false;
        return now.every((p) => tilesShow(p, ids));
      }, 15_000);
      const backAfterS = (performance.now() - killedAt) / 1000;
      if (process.env.DEBUG_TEST) console.log(`owner ${ownerUrl}; now on ${ps.map((p) => p.current().node).join(", ")}`);
      if (process.env.DEBUG_TEST) console.log(`back in a mixed call ${backAfterS.toFixed(1)} s after the kill`);
      expect(backAfterS, "seconds from SIGKILL to a mixed call on another node").toBeLessThan(10);
      const t0 = performance.now();
      await sleep(1000);
      for (const p of ps) expect(longestGap(p.current(), t0), "frames keep coming on the new node").toBeLessThan(700);

      const meta = await waitUntilDone(survivors[0]!.url, id, 60_000);
      expect(meta).toMatchObject({ status: "done", endedBy: "crash", attempts: 1 });
      const closedOut = survivors.map((n) => n.log().split("\n").filter((l) => l.includes("recording cut off by a crash") && l.includes(id)).length);
      expect(closedOut.reduce((x, y) => x + y), `closed out by: ${closedOut}`).toBe(1);

      // Back under the same URL: it registers again, as a new process (a new boot).
      const again = await startNode(prefix, {}, owner.port);
      const seenFrom = survivors[0]!.url;
      await waitFor("the restarted node registered", async () => (await nodesSeen(seenFrom)).some((n) => n.url === ownerUrl), 10_000);
      const nowSeen = await nodesSeen(seenFrom);
      expect(nowSeen.length).toBe(3);
      expect(nowSeen.find((n) => n.url === ownerUrl)!.boot, "a new process, not the dead one's registration").not.toBe(bootBefore);
      await again.stop();
    } finally {
      for (const p of ps) await p.stop();
    }
  }, 120_000);
});

describe("a node cut off from Redis", () => {
  it("keeps its running room and takes no new one until Redis is back", async () => {
    const prefix = uniquePrefix("cluster-cut");
    // The node reaches Redis through a proxy this test can cut.
    const [host, port] = new URL(REDIS_URL).host.split(":");
    const sockets = new Set<net.Socket>();
    let open = true;
    const proxy = net.createServer((c) => {
      if (!open) return c.destroy();
      const up = net.connect(Number(port ?? 6379), host);
      sockets.add(c).add(up);
      c.pipe(up).pipe(c);
      const done = () => (c.destroy(), up.destroy());
      c.on("error", done).on("close", done);
      up.on("error", done).on("close", done);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", () => r()));
    const proxyUrl = `redis://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    const node = await startNode(prefix, { REDIS_URL: proxyUrl, NODE_TTL_MS: "1500", NODE_HEARTBEAT_MS: "500" });
    await waitForNodes(node.url, 1);
    const ps = await joinAll(at(node), "island", ["p0", "p1"]);
    try {
      await waitForTiles(ps[0]!, ["p0", "p1"]);
      open = false;
      for (const s of sockets) s.destroy();
      await sleep(2500); // past its registration's lifetime
      const t0 = performance.now();
      await sleep(1000);
      for (const p of ps) expect(longestGap(p, t0), "the running room goes on").toBeLessThan(700);
      const c = await raw(node);
      expect(await c.ask({ type: "join", room: "new-room", name: "z" }, ["joined", "redirect", "error"])).toMatchObject({ type: "error", code: "cluster_unavailable" });
      // Someone joining the room it has still gets in.
      expect(await c.ask({ type: "join", room: "island", name: "p2" }, ["joined", "error"])).toMatchObject({ type: "joined" });
      c.close();
      open = true;
      await waitFor("new rooms again once Redis is back", async () => {
        const d = await raw(node);
        const r = await d.ask({ type: "join", room: "new-room", name: "z" }, ["joined", "redirect", "error"]);
        d.close();
        return r.type === "joined";
      }, 15_000);
    } finally {
      await closeAll(ps);
      proxy.close();
      for (const s of sockets) s.destroy();
    }
  }, 60_000);
});

describe("a token revoked on one node", () => {
  const prefix = uniquePrefix("cluster-revoke");
  const SECRET = "r".repeat(40);
  const env = { AUTH_SECRET: SECRET, API_TOKEN: "t0ken" };
  const AUTH = { Authorization: "Bearer t0ken", "Content-Type": "application/json" };
  let a: Node;
  let b: Node;
  beforeAll(async () => {
    [a, b] = await Promise.all([startNode(prefix, env), startNode(prefix, env)]);
    await waitForNodes(a.url, 2, { Authorization: AUTH.Authorization });
  }, 60_000);

  it("removes its holder from the room on the other node, and no node lets it join again (a node started later included)", async () => {
    const mint = async (name: string) =>
      (await (await fetch(`${a.url}/api/rooms/rv/tokens`, { method: "POST", headers: AUTH, body: JSON.stringify({ name }) })).json()) as { token: string; expiresAt: number; grant: { tokenId: string } };
    const ada = await mint("p0");
    const [p0] = await joinAll(at(a), "rv", ["p0"], { token: ada.token });
    const [p1] = await joinAll(at(a), "rv", ["p1"], { token: (await mint("p1")).token });
    try {
      await waitForTiles(p1!, ["p0", "p1"]);
      // Revoked through the node that does not have the room.
      const other = p0!.node === a.url ? b : a;
      const r = await fetch(`${other.url}/api/tokens/${ada.grant.tokenId}/revoke`, { method: "POST", headers: AUTH, body: JSON.stringify({ expiresAt: ada.expiresAt }) });
      expect(r.status).toBe(200);
      expect((await r.json()).removed).toBe(0); // none here: its holder is on the room's node
      await waitFor("p0 removed on the room's node", () => p0!.messages.find((m) => m.type === "kicked"), 5000);
      await waitForTiles(p1!, ["p1"]);
      for (const node of [a, b]) await expect(joinAll(at(node), "rv", ["p0"], { token: ada.token })).rejects.toThrow(/token was revoked/);
      const c = await startNode(prefix, env);
      await waitForNodes(a.url, 3, { Authorization: AUTH.Authorization });
      await expect(joinAll(at(c), "rv", ["p0"], { token: ada.token })).rejects.toThrow(/token was revoked/);
    } finally {
      await closeAll([p0!, p1!]);
    }
  }, 90_000);
});
