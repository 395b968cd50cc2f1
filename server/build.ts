// `npm run build`: the production build in dist/ — the server, its media worker, the post-processing worker and the token tool
// compiled to JavaScript (our code bundled per entry; packages stay in node_modules, werift with
// its patch applied at install), and the client's script and page. `npm run serve` then runs
// `node dist/server.js`: no TypeScript, no esbuild, no patching at run time.
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { buildClientScript, CLIENT_SCRIPT } from "./clientBundle.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const out = path.join(root, "dist");

await fs.rm(out, { recursive: true, force: true });
await build({
  entryPoints: { server: "server/main.ts", "media-worker": "server/media/worker.ts", worker: "server/worker.ts", token: "server/token.ts" },
  absWorkingDir: root,
  outdir: out,
  bundle: true,
  packages: "external",
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
});
await fs.mkdir(path.join(out, "client"));
await fs.writeFile(path.join(out, "client", CLIENT_SCRIPT), await buildClientScript());
await fs.copyFile(path.join(root, "client", "index.html"), path.join(out, "client", "index.html"));
console.log(`built ${path.relative(process.cwd(), out) || "."}/: server.js, media-worker.js, worker.js, token.js, client/`);
