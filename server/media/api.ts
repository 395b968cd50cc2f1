// GET /api/workers: this server's media workers (MEDIA_WORKERS), each with its pid, its starts and
// its last load report (CPU of its tree in cores, loop lag, overload level, rooms, participants).
import type Koa from "koa";
import type { MediaWorkers } from "./MediaWorkers.ts";

export function workersApi(workers: MediaWorkers): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.path !== "/api/workers" || ctx.method !== "GET") return next();
    ctx.body = workers.list();
  };
}
