// `npm run token -- --room R --name N [--identity I] [--rights a,b] [--ttl S] [--url http://host:8080]`
// Mints a room token with AUTH_SECRET; prints it (and a join link with --url) on stdout.
// Exit 2 on bad arguments or configuration, so scripts can tell it from a crash.
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "./config.ts";
import { ALL_RIGHTS, TokenInputError, mintRoomToken, type Right } from "./roomTokens.ts";

const USAGE = `usage: npm run -s token -- --room ROOM --name NAME [--identity ID] [--rights ${ALL_RIGHTS.join(",")}] [--ttl SECONDS] [--url http://host:8080]
  needs AUTH_SECRET (>= 32 characters) in the environment; --ttl defaults to TOKEN_TTL_S`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<string[]> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        room: { type: "string" },
        name: { type: "string" },
        identity: { type: "string" },
        rights: { type: "string" },
        ttl: { type: "string" },
        url: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return [USAGE];
  if (!values.room) throw new UsageError("--room is required");
  if (!values.name) throw new UsageError("--name is required");
  const config = loadConfig();
  if (!config.authSecret) throw new UsageError("AUTH_SECRET is not set (e.g. export AUTH_SECRET=$(openssl rand -hex 32))");
  const ttlS = values.ttl === undefined ? config.tokenTtlS : Number(values.ttl);
  let base: URL | undefined;
  if (values.url !== undefined) {
    try {
      base = new URL(values.url);
    } catch {
      throw new UsageError(`--url "${values.url}" is not a URL`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new UsageError("--url must be http:// or https://");
  }
  const rights = values.rights?.split(",").map((r) => r.trim()).filter(Boolean) as Right[] | undefined;
  const { token, grant } = await mintRoomToken(config.authSecret, { room: values.room, name: values.name, identity: values.identity, rights, ttlS });
  const out = [token];
  if (base) {
    // encodeURIComponent, not URLSearchParams: %20 rather than "+" reads the same everywhere.
    const q = Object.entries({ room: grant.room, name: grant.name, token }).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    out.push(`${base.origin}${base.pathname.replace(/\/*$/, "/")}?${q}`);
  }
  return out;
}

main(process.argv.slice(2)).then(
  (lines) => process.stdout.write(lines.join("\n") + "\n"),
  (err) => {
    const known = err instanceof UsageError || err instanceof ConfigError || err instanceof TokenInputError;
    process.stderr.write(`token: ${(err as Error).message}\n${err instanceof UsageError ? USAGE + "\n" : ""}`);
    process.exitCode = known ? 2 : 1;
  },
);
