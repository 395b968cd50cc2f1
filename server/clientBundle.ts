// The browser client: the page and its script. A compiled server (`npm run build`: dist/server.js)
// serves the bundle built beside it (dist/client/); from source (`npm start`) the script is bundled
// from client/src/*.ts by esbuild at start, so development needs no build step. Served minified,
// gzipped when the browser accepts it.
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const here = path.dirname(fileURLToPath(import.meta.url));
/** Source of the client (development), from server/ or from dist/. */
const sourceDir = path.join(here, "..", "client");
/** A pre-built client next to a compiled server. */
const prebuiltDir = path.join(here, "client");
export const CLIENT_SCRIPT = "client.js";

export interface ClientBundle {
  html: Buffer;
  js: Buffer;
  gzip: Buffer;
  /** Where the script came from: the build beside a compiled server, or bundled at start. */
  source: "prebuilt" | "bundled";
}

/** The client bundled from client/src (the build script writes this to dist/client/). */
export async function buildClientScript(): Promise<Buffer> {
  // Only development and the build load esbuild: a compiled server never does.
  const { build, stop } = await import("esbuild");
  const r = await build({
    entryPoints: [path.join(sourceDir, "src", "main.ts")],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    write: false,
    logLevel: "silent",
  });
  // esbuild keeps a helper process alive for further builds; there are none, so let it go.
  await stop();
  return Buffer.from(r.outputFiles[0]!.contents);
}

export async function loadClient(): Promise<ClientBundle> {
  const prebuilt = await fs.readFile(path.join(prebuiltDir, CLIENT_SCRIPT)).catch(() => undefined);
  const dir = prebuilt ? prebuiltDir : sourceDir;
  const js = prebuilt ?? (await buildClientScript());
  return { html: await fs.readFile(path.join(dir, "index.html")), js, gzip: gzipSync(js, { level: 9 }), source: prebuilt ? "prebuilt" : "bundled" };
}
