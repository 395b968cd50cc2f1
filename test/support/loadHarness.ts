// A busy machine beside a call: processes at normal priority that each spin most of the time
// (busy `duty` of every 100 ms, asleep the rest), one per core by default, so the server and its
// children compete for CPU as on a server that earns its keep. stop() ends them all.
import { spawn, type ChildProcess } from "node:child_process";
import os from "node:os";

const SPINNER = `
const duty = Number(process.argv[1]);
let x = 0;
function cycle() {
  const end = Date.now() + 100 * duty;
  while (Date.now() < end) x = (x * 1103515245 + 12345) % 2147483648;
  setTimeout(cycle, 100 * (1 - duty));
}
cycle();
// Never outlive the test that started it: orphaned (its parent gone), it stops.
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(0), 500);
`;

export interface LoadHarness {
  /** CPU the spinners took since they started, in cores (from their own /proc times). */
  stop(): Promise<void>;
  readonly pids: number[];
}

export function startLoad(o: { processes?: number; duty?: number } = {}): LoadHarness {
  const n = o.processes ?? os.availableParallelism();
  const duty = o.duty ?? 0.85;
  const children: ChildProcess[] = [];
  for (let i = 0; i < n; i++) children.push(spawn(process.execPath, ["-e", SPINNER, String(duty)], { stdio: "ignore" }));
  return {
    pids: children.map((c) => c.pid!),
    async stop() {
      await Promise.all(children.map((c) => new Promise<void>((done) => {
        if (c.exitCode !== null || c.signalCode !== null) return done();
        c.once("exit", () => done());
        c.kill("SIGKILL");
      })));
    },
  };
}
