// Free space of the recordings' disk, held against RECORDINGS_MIN_FREE_MB.
import fs from "node:fs/promises";

/** MB an unprivileged process may still write: bavail, not bfree (root's reserved blocks are not ours). */
export function freeMb(st: { bavail: number | bigint; bsize: number | bigint }): number {
  return (Number(st.bavail) * Number(st.bsize)) / (1024 * 1024);
}

/** A floor of 0 turns the check off. */
export function belowFloor(free: number, floorMb: number): boolean {
  return floorMb > 0 && free < floorMb;
}

export async function measureFreeMb(dir: string): Promise<number> {
  return freeMb(await fs.statfs(dir));
}
