// A real coturn on loopback for the relay test, configured like docker-compose's: TURN REST
// credentials (use-auth-secret) with a shared secret.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

export interface Coturn {
  port: number;
  /** Allocations coturn logged (a relay was really used). */
  allocations(): number;
  log(): string;
  close(): void;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startCoturn(secret: string): Promise<Coturn> {
  const bin = process.env.TURNSERVER_PATH || "/usr/bin/turnserver";
  if (!fs.existsSync(bin)) throw new Error(`coturn not found at ${bin}: install it (apt-get install -y coturn)`);
  const port = await freePort();
  const child: ChildProcess = spawn(bin, [
    "-n", "-v", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
    "--listening-ip=127.0.0.1", `--listening-port=${port}`, "--relay-ip=127.0.0.1",
    "--min-port=49152", "--max-port=49999", "--realm=mixroom",
    "--use-auth-secret", `--static-auth-secret=${secret}`,
    "--allow-loopback-peers", "--no-multicast-peers", "--fingerprint",
  ]);
  let log = "";
  child.stdout?.on("data", (d) => (log += d.toString()));
  child.stderr?.on("data", (d) => (log += d.toString()));
  const t0 = Date.now();
  while (!/listener opened on|Total General servers|IPv4. UDP listener/i.test(log)) {
    if (child.exitCode !== null || Date.now() - t0 > 10_000) throw new Error(`coturn did not start:\n${log.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    allocations: () => (log.match(/ALLOCATE processed, success/g) ?? []).length,
    log: () => log,
    close: () => child.kill("SIGKILL"),
  };
}
