// /metrics with media workers: every worker's metrics summed with main's, except a level or a delay,
// where the worst worker's is what an operator needs to see.
import { expect, it } from "vitest";
import { metrics, metricsJson, renderMetricsWith } from "../../telemetry/metrics.ts";

type Json = { name: string; values: { value: number; labels: Record<string, string> }[] };

it("sums counts across processes and takes the highest overload level and the worst loop lag", async () => {
  metrics.rooms.set(2);
  metrics.overloadLevel.set(1);
  metrics.loadLoopLagMs.set(12);
  const worker = structuredClone(await metricsJson()) as Json[];
  const set = (name: string, value: number) => {
    for (const v of worker.find((m) => m.name === name)!.values) v.value = value;
  };
  set("mcu_rooms", 3);
  set("mcu_overload_level", 2);
  set("mcu_load_event_loop_lag_ms", 80);
  const text = await renderMetricsWith([worker]);
  expect(text).toMatch(/^mcu_rooms 5$/m);
  expect(text).toMatch(/^mcu_overload_level 2$/m);
  expect(text).toMatch(/^mcu_load_event_loop_lag_ms 80$/m);
});
