// A promise rejected with no handler (Node would end the process) is logged and counted instead:
// werift runs much of a peer's input in fire-and-forget async code, and one client's odd packet
// must not take down every room. Uncaught exceptions still end the process (a media worker's end
// only its own rooms).
import { logger } from "./log.ts";
import { metrics } from "./metrics.ts";

const log = logger("server");
let watched = false;

export function watchRejections(): void {
  if (watched) return;
  watched = true;
  process.on("unhandledRejection", (reason) => {
    metrics.unhandledRejections.inc();
    log.error("unhandled promise rejection (the server goes on)", { error: reason instanceof Error ? (reason.stack ?? reason.message) : String(reason) });
  });
}
