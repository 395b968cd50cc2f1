// Lists, at the end of a run, every test that failed once and passed when retried. The media
// tests share one process with their server and all of its clients on a 2-core machine, and a
// stall of that process (a fork of a 1 GB process per ffmpeg spawn, a GC) can push a "no freeze"
// or level check over its bound once. A test retries once (vitest.config.ts); a defect that fails
// twice still fails the run, and one that flakes is named here so it is not forgotten.
import type { Reporter, TestCase, TestModule } from "vitest/node";

export default class FlakyReporter implements Reporter {
  private readonly flaky: string[] = [];

  onTestCaseResult(test: TestCase): void {
    const d = test.diagnostic();
    if (d?.flaky) {
      const first = test.result().errors?.[0]?.message?.split("\n")[0];
      this.flaky.push(`${test.module.moduleId.replace(process.cwd() + "/", "")} > ${test.fullName} (retried ${d.retryCount}x)${first ? `: ${first}` : ""}`);
    }
  }

  onTestRunEnd(_modules: ReadonlyArray<TestModule>): void {
    if (this.flaky.length === 0) return;
    process.stdout.write(`\nPassed only when retried (${this.flaky.length}):\n${this.flaky.map((f) => `  ~ ${f}`).join("\n")}\n`);
  }
}
