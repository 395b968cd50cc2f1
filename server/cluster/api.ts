// The REST API across nodes (after apiAuth, before the local routes): a request about a room another
// node holds is passed to that node as it came (method, body, Authorization) and its answer returned;
// GET /api/rooms lists the rooms of every live node; GET /api/nodes is the registry.
import type Koa from "koa";
import { logger } from "../../telemetry/log.ts";
import { readBody } from "../httpBody.ts";
import type { Cluster, NodeRef } from "./Cluster.ts";

const log = logger("cluster");
/** Marks a request one node passed to another: it is answered where it lands, never passed on again. */
const FORWARDED = "x-mixroom-forwarded";
const FORWARD_TIMEOUT_MS = 5000;
const MAX_BODY = 64 * 1024;

async function forward(ctx: Koa.Context, to: NodeRef): Promise<void> {
  const body = ctx.method === "GET" || ctx.method === "HEAD" ? undefined : await readBody(ctx.req, MAX_BODY);
  if (body === "too_large" || body === "aborted") ctx.throw(413, `body over ${MAX_BODY} bytes`);
  const headers: Record<string, string> = { [FORWARDED]: "1" };
  for (const h of ["authorization", "content-type", "range"]) if (ctx.get(h)) headers[h] = ctx.get(h);
  let res: Response;
  try {
    res = await fetch(`${to.url}${ctx.originalUrl}`, { method: ctx.method, headers, body: body || undefined, signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS) });
  } catch (err) {
    log.warn("could not reach the room's node", { node: to.id, path: ctx.path, error: (err as Error).message });
    ctx.status = 502;
    ctx.body = { error: "node_unreachable", message: `the node holding this room (${to.url}) did not answer` };
    return;
  }
  ctx.status = res.status;
  for (const h of ["content-type", "content-range", "accept-ranges", "allow"]) {
    const v = res.headers.get(h);
    if (v) ctx.set(h, v);
  }
  ctx.body = Buffer.from(await res.arrayBuffer());
}

/** `isLocal`: whether a room is open on this node (in its process or one of its media workers). */
export function clusterApi(cluster: Cluster, isLocal: (room: string) => boolean): Koa.Middleware {
  return async (ctx, next) => {
    if (!ctx.path.startsWith("/api/")) return next();
    const forwarded = ctx.get(FORWARDED) === "1";
    if (ctx.path === "/api/nodes" && ctx.method === "GET") {
      ctx.body = { self: cluster.self, nodes: await cluster.nodes() };
      return;
    }
    if (ctx.path === "/api/rooms" && ctx.method === "GET" && !forwarded) {
      // Each live node's own list, the node named in every room.
      const lists = await Promise.all(
        (await cluster.nodes()).map(async (n) => {
          if (n.id === cluster.self.id) return [];
          const res = await fetch(`${n.url}/api/rooms`, { headers: { [FORWARDED]: "1", ...(ctx.get("authorization") ? { authorization: ctx.get("authorization") } : {}) }, signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS) }).catch(() => undefined);
          const list = res?.ok ? ((await res.json()) as { id: string }[]) : [];
          return list.map((r) => ({ ...r, node: n.url }));
        }),
      );
      await next(); // this node's own rooms
      if (Array.isArray(ctx.body)) ctx.body = [...(ctx.body as object[]).map((r) => ({ ...r, node: cluster.self.url })), ...lists.flat()];
      return;
    }
    const room = /^\/api\/rooms\/([^/]+)\//.exec(ctx.path + "/")?.[1];
    if (!room || forwarded || isLocal(decodeURIComponent(room))) return next();
    const owner = await cluster.ownerOf(decodeURIComponent(room)).catch(() => undefined);
    if (!owner || cluster.isSelf(owner)) return next();
    return forward(ctx, owner);
  };
}
