// Spawning a child blocks Node's event loop for the fork (tens of ms in a large process). A layout
// change that resized every tile and rendered new labels at once spawned a dozen children in one
// tick and held every room's frames back for 300 ms. Spawns that can wait a moment — a resized tile's
// new decoder (the old one serves meanwhile), label and placeholder renders — take turns here, one
// every SPACING_MS, so frames keep going out between them. Spawns that cannot wait (an encoder's
// standby, a first decoder) do not queue.

const SPACING_MS = 40;
const queue: (() => void)[] = [];
let busy = false;

/** Resolves when it is this caller's turn to spawn (at once when nobody spawned in the last SPACING_MS). */
export function spawnTurn(): Promise<void> {
  return new Promise((resolve) => {
    queue.push(resolve);
    if (!busy) next();
  });
}

function next(): void {
  const run = queue.shift();
  busy = !!run;
  if (!run) return;
  run();
  // The caller spawns synchronously in the microtask after this; the next turn waits SPACING_MS.
  setTimeout(next, SPACING_MS).unref();
}
