// Bounds on what a participant's DataChannels (SCTP over DTLS) can make the server hold. werift's
// SCTP receiver advertises a 1 MB window but never enforces it: a peer that sends fragments of a
// message that never ends, or data far ahead of a gap, grows its reassembly buffer without limit;
// it takes any stream number (a reassembly state each), and every DataChannel a peer opens is kept
// in a list. The guard sits in front of werift's data-chunk handling:
//  - a chunk past the window the server advertised is dropped (`window`): a conforming sender
//    never sends one, a hostile one gets its bytes held to the window;
//  - a chunk on a stream number above `maxStreamId` is dropped (`stream`);
//  - a chunk when `maxOutOfOrder` chunks already wait behind a gap is dropped (`out_of_order`):
//    werift sorts that set on every chunk.
// Channel opens are the owner's to bound (Participant: one "chat" channel). Every drop is counted
// in `mcu_datachannel_dropped_total{reason}`; SCTP retransmits what a conforming peer lost.
import { metrics } from "../telemetry/metrics.ts";

/** What the guard touches of werift's SCTP association. */
interface SctpAssociation {
  advertisedRwnd: number;
  sackMisOrdered: Set<number>;
  receiveDataChunk(chunk: { streamId: number; userData: Buffer }): unknown;
}

export interface SctpLimits {
  /** Highest stream number taken (a browser numbers its channels from 0; two per channel pair at most). */
  maxStreamId: number;
  /** Chunks held behind a gap. */
  maxOutOfOrder: number;
}

export const SCTP_LIMITS: SctpLimits = { maxStreamId: 31, maxOutOfOrder: 512 };

/** The association of werift's RTCSctpTransport (undefined before an application section is negotiated). */
export function sctpAssociation(pc: unknown): SctpAssociation | undefined {
  const p = pc as { sctpTransport?: { sctp?: SctpAssociation }; sctpManager?: { sctpTransport?: { sctp?: SctpAssociation } } };
  return p.sctpTransport?.sctp ?? p.sctpManager?.sctpTransport?.sctp;
}

export function guardSctp(sctp: SctpAssociation, limits: SctpLimits = SCTP_LIMITS): void {
  const receive = sctp.receiveDataChunk.bind(sctp);
  sctp.receiveDataChunk = (chunk) => {
    const reason =
      chunk.streamId > limits.maxStreamId ? "stream"
      : sctp.advertisedRwnd - chunk.userData.length < 0 ? "window"
      : sctp.sackMisOrdered.size >= limits.maxOutOfOrder ? "out_of_order"
      : undefined;
    if (reason) {
      metrics.dataChannelDropped.inc({ reason });
      return;
    }
    return receive(chunk);
  };
}
