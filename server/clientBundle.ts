// The browser client, bundled from client/src/*.ts by esbuild when the server starts (no build
// step, nothing generated in the tree). Served minified, gzipped when the browser accepts it.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build, stop } from "esbuild";

const clientDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "client");

export interface ClientBundle {
  js: Buffer;
  gzip: Buffer;
}

export async function bundleClient(): Promise<ClientBundle> {
  const r = await build({
    entryPoints: [path.join(clientDir, "src", "main.ts")],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    write: false,
    logLevel: "silent",
  });
  // esbuild keeps a helper process alive for further builds; there are none, so let it go.
  await stop();
  const js = Buffer.from(r.outputFiles[0].contents);
  return { js, gzip: gzipSync(js, { level: 9 }) };
}
