// The server the browser tests talk to: in-process, loopback, its recordings in a temporary folder
// removed again by stop().
import fs from "node:fs/promises";
import { generateFixtures } from "../../fixtures/generate.ts";
import type { Config } from "../../server/config.ts";
import { startServer, type RunningServer } from "../../server/main.ts";
import { tempDir } from "../support/recordingApi.ts";

export async function startBrowserTestServer(label: string, overrides: Partial<Config> = {}): Promise<RunningServer & { stop(): Promise<void> }> {
  await generateFixtures();
  const recordings = await tempDir(`${label}-recordings`);
  // Rooms in this process unless a test asks for media workers (see test/support/call.ts).
  const server = await startServer({ recordingsDir: recordings, port: 0, host: "127.0.0.1", logLevel: (process.env.TEST_LOG_LEVEL as Config["logLevel"]) || "warn", mediaWorkers: 0, ...overrides });
  return Object.assign(server, {
    async stop() {
      await server.close();
      await fs.rm(recordings, { recursive: true, force: true });
    },
  });
}
