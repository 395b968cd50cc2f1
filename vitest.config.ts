import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Media tests run real ffmpeg and werift peers on a 2-core machine: one file at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // One retry: the server and every client of a media test share this process, so one stall of
    // it can break a timing bound once. A test that fails twice fails the run; one that passed
    // only on its retry is listed at the end of the run (test/support/flakyReporter.ts).
    retry: 1,
    reporters: ["default", "./test/support/flakyReporter.ts"],
  },
});
