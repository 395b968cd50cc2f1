// Room tokens revoked before they expire, by token id (`jti`, the `grant.tokenId` the mint returns).
// A revoked token joins nowhere, and whoever is in a room with it is removed at once. On one node
// the list is in memory; with Redis (several nodes) a revocation is also a key that lives until the
// token would have expired, so a node that starts later or missed the news still refuses the token,
// and a message on a channel, so every node removes its holders at once.
import { logger } from "../telemetry/log.ts";
import { metrics } from "../telemetry/metrics.ts";

const log = logger("revocations");

/** Where revocations are shared between nodes (the cluster's Redis). */
export interface RevocationStore {
  revoke(tokenId: string, untilS: number): Promise<void>;
  isRevoked(tokenId: string): Promise<boolean>;
  /** Calls `f` for every revocation any node makes (this one's included). */
  onRevoked(f: (tokenId: string, untilS: number) => void): void;
}

/** Revocations held in memory on a node: each a token id and until when (unix seconds). */
export const MAX_REVOCATIONS = 100_000;

export class RevocationError extends Error {}

export class Revocations {
  private readonly local = new Map<string, number>();

  constructor(
    private readonly store: RevocationStore | undefined,
    /** Removes the token's holders from this node's rooms (or its media workers'); returns how many. */
    private readonly removeHolders: (tokenId: string) => number | Promise<number>,
  ) {
    store?.onRevoked((id, until) => {
      try {
        this.remember(id, until);
      } catch (err) {
        log.warn("revocation from another node not kept in memory (Redis still has it)", { tokenId: id, error: (err as Error).message });
      }
      void Promise.resolve(this.removeHolders(id)).catch((err: Error) => log.warn("could not remove a revoked token's holders", { tokenId: id, error: err.message }));
    });
  }

  /** Revokes `tokenId` until `untilS` (when it expires anyway); resolves to how many were removed here. */
  async revoke(tokenId: string, untilS: number): Promise<number> {
    this.remember(tokenId, untilS);
    if (this.store) await this.store.revoke(tokenId, untilS);
    metrics.tokensRevoked.inc();
    const removed = await this.removeHolders(tokenId);
    log.info("token revoked", { tokenId, until: new Date(untilS * 1000).toISOString(), removed });
    return removed;
  }

  /** Whether a token may not join: revoked here, or (with a store) on any node. */
  async isRevoked(tokenId: string): Promise<boolean> {
    const until = this.local.get(tokenId);
    if (until !== undefined) {
      if (until > Date.now() / 1000) return true;
      this.local.delete(tokenId);
    }
    return this.store ? this.store.isRevoked(tokenId) : false;
  }

  private remember(tokenId: string, untilS: number): void {
    if (!this.local.has(tokenId) && this.local.size >= MAX_REVOCATIONS) {
      const now = Date.now() / 1000;
      for (const [id, u] of this.local) if (u <= now) this.local.delete(id);
      if (this.local.size >= MAX_REVOCATIONS) throw new RevocationError(`more than ${MAX_REVOCATIONS} tokens revoked and not yet expired`);
    }
    this.local.set(tokenId, untilS);
  }
}
