// REST for recordings, under /api. Thin: each route calls Recordings or the store.
//   POST/DELETE/GET /api/rooms/:room/recording   start, stop, current
//   GET    /api/recordings                       list (status, progress)
//   GET    /api/recordings/:id                   metadata
//   DELETE /api/recordings/:id                   delete
//   GET    /api/recordings/:id/files/:name       download (HTTP Range)
import { createReadStream } from "node:fs";
import fs from "node:fs/promises";
import type Koa from "koa";
import { FILE_TYPES } from "./finalize.ts";
import { parseRange } from "./range.ts";
import { RecordingError, type Recordings } from "./Recordings.ts";
import { BadNameError, type RecordingMeta } from "./RecordingStore.ts";

type Handler = (ctx: Koa.Context, params: string[]) => Promise<void>;
type Route = { re: RegExp; methods: Record<string, Handler> };

function fail(ctx: Koa.Context, status: number, error: string, message: string): void {
  ctx.status = status;
  ctx.body = { error, message };
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new BadNameError(`"${segment.slice(0, 60)}" is not a valid URL segment`);
  }
}

/** Start, stop and current: this process's Recordings, or the media worker's that holds the room. */
export interface RecordingRoutes {
  start(room: string): Promise<unknown>;
  stop(room: string): Promise<unknown>;
  current(room: string): RecordingMeta | undefined | Promise<RecordingMeta | undefined>;
}

export function recordingsApi(recordings: Recordings, control: RecordingRoutes = recordings): Koa.Middleware {
  const { store } = recordings;

  const download: Handler = async (ctx, [id, name]) => {
    const file = store.filePath(id!, name!);
    const meta = await store.read(id!);
    if (!meta) return fail(ctx, 404, "unknown_recording", `no recording "${id}"`);
    const st = await fs.stat(file).catch(() => undefined);
    if (!st?.isFile() || !Object.hasOwn(FILE_TYPES, name!)) {
      return fail(ctx, 404, "unknown_file", `recording "${id}" has no file "${name}" (status ${meta.status})`);
    }
    const range = parseRange(ctx.get("Range") || undefined, st.size);
    ctx.set("Accept-Ranges", "bytes");
    if (range.kind === "bad") {
      ctx.set("Content-Range", `bytes */${st.size}`);
      return fail(ctx, 416, "bad_range", range.message);
    }
    ctx.type = FILE_TYPES[name!]!;
    ctx.set("Content-Disposition", `inline; filename="${id}-${name}"`);
    const [start, end] = range.kind === "range" ? [range.start, range.end] : [0, st.size - 1];
    if (range.kind === "range") {
      ctx.status = 206;
      ctx.set("Content-Range", `bytes ${start}-${end}/${st.size}`);
    }
    const length = st.size === 0 ? 0 : end - start + 1;
    // HEAD: the same headers, no body (koa would drop a stream's body but leave the file open).
    ctx.body = ctx.method === "HEAD" || length === 0 ? "" : createReadStream(file, { start, end });
    ctx.length = length;
  };

  const routes: Route[] = [
    {
      re: /^\/api\/rooms\/([^/]+)\/recording$/,
      methods: {
        GET: async (ctx, [room]) => {
          ctx.body = { recording: (await control.current(room!)) ?? null };
        },
        POST: async (ctx, [room]) => {
          ctx.status = 201;
          ctx.body = await control.start(room!);
        },
        DELETE: async (ctx, [room]) => {
          ctx.body = await control.stop(room!);
        },
      },
    },
    {
      re: /^\/api\/recordings$/,
      methods: {
        GET: async (ctx) => {
          ctx.body = await store.list();
        },
      },
    },
    {
      re: /^\/api\/recordings\/([^/]+)$/,
      methods: {
        GET: async (ctx, [id]) => {
          const meta = await store.read(id!);
          if (!meta) return fail(ctx, 404, "unknown_recording", `no recording "${id}"`);
          ctx.body = meta;
        },
        DELETE: async (ctx, [id]) => {
          await recordings.remove(id!);
          ctx.status = 204;
        },
      },
    },
    // Anything after files/ is one name: a slash in it is refused, not followed.
    { re: /^\/api\/recordings\/([^/]+)\/files\/(.+)$/, methods: { GET: download, HEAD: download } },
  ];

  return async (ctx, next) => {
    if (!ctx.path.startsWith("/api/r")) return next();
    for (const r of routes) {
      const m = r.re.exec(ctx.path);
      if (!m) continue;
      // HEAD wherever GET works (koa sends the headers without the body).
      const handler = r.methods[ctx.method] ?? (ctx.method === "HEAD" ? r.methods.GET : undefined);
      if (!handler) {
        ctx.set("Allow", Object.keys(r.methods).join(", "));
        return fail(ctx, 405, "method_not_allowed", `${ctx.method} is not allowed here (allowed: ${Object.keys(r.methods).join(", ")})`);
      }
      try {
        await handler(ctx, m.slice(1).map(decode));
      } catch (err) {
        if (err instanceof RecordingError) return fail(ctx, err.status, err.code, err.message);
        if (err instanceof BadNameError) return fail(ctx, 400, "bad_name", err.message);
        throw err;
      }
      return;
    }
    return next();
  };
}
