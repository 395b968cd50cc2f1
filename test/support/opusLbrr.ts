// Whether an Opus packet carries in-band FEC: the LBRR flag of its SILK layer, read as a decoder
// reads it (RFC 6716 §4.1 range decoder; §4.2.3: the VAD flag of each SILK frame, then the LBRR
// flag, each a bit of probability 1/2). Only one-frame mono packets of SILK or hybrid modes
// (configs 0–15) carry a SILK layer; undefined for anything else. One frame comes as code 0, or as
// code 3 with one frame and padding (what hard CBR sends, §3.2.5).

/** The one frame of a mono one-frame packet (code 0, or code 3 with M = 1), or undefined. */
function onlyFrame(packet: Buffer): Buffer | undefined {
  const toc = packet[0]!;
  if (toc & 0x04) return undefined; // stereo
  const code = toc & 0x03;
  if (code === 0) return packet.subarray(1);
  if (code !== 3 || packet.length < 2) return undefined;
  const count = packet[1]!;
  if ((count & 0x3f) !== 1) return undefined;
  let pos = 2;
  let padding = 0;
  if (count & 0x40) {
    for (;;) {
      const b = packet[pos++];
      if (b === undefined) return undefined;
      padding += b === 255 ? 254 : b;
      if (b !== 255) break;
    }
  }
  return packet.subarray(pos, packet.length - padding);
}

export function opusHasLbrr(packet: Buffer): boolean | undefined {
  if (packet.length < 3 || packet[0]! >> 3 > 15) return undefined; // CELT only: no SILK layer
  const data = onlyFrame(packet);
  if (!data || data.length < 2) return undefined;
  let pos = 0;
  const next = () => (pos < data.length ? data[pos++]! : 0);
  const TOP = 2 ** 31;
  const BOT = 2 ** 23;
  let rng = 128;
  let rem = next();
  let val = rng - 1 - (rem >> 1);
  const normalize = () => {
    while (rng <= BOT) {
      rng *= 256;
      const sym = ((rem << 8) | (rem = next())) >> 1;
      val = (val * 256 + (255 & ~sym)) % TOP;
    }
  };
  normalize();
  const bit = () => {
    const s = Math.floor(rng / 2);
    const one = val < s; // the "1" symbol takes the low half (ec_dec_bit_logp)
    if (!one) val -= s;
    rng = one ? s : rng - s;
    normalize();
    return one;
  };
  bit(); // the VAD flag of the one 20 ms SILK frame
  return bit(); // the LBRR flag: FEC data for the previous frame follows
}
