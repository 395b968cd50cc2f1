// Who is speaking, and who holds the floor: pure decisions over one level per 20 ms audio block,
// with the time passed in (no clock of their own), so they can be tested block by block.
//
// Speaking (per participant) has hysteresis in level and in time:
// - it starts only when the voice is sustained: a leaky counter gains a block's length for every
//   block louder than `onDb` and loses half that for every quieter one, and speech starts when it
//   reaches `onsetMs`. A 100 ms blip, a cough or a key click never gets there; syllables with short
//   pauses between them do;
// - it ends only after `holdMs` with no block louder than `offDb` (lower than `onDb`), so the
//   pauses inside a sentence do not end it.
// The floor (the one active speaker, for the speaker layout) moves to someone else only when that
// person has been the loudest speaker for `floorHoldMs` without a break, and at most once every
// `floorMinIntervalMs`. It stays with the last holder through silence.

export interface VoiceSettings {
  onDb: number;
  offDb: number;
  onsetMs: number;
  holdMs: number;
  floorHoldMs: number;
  floorMinIntervalMs: number;
}

export const VOICE_DEFAULTS: VoiceSettings = { onDb: -42, offDb: -50, onsetMs: 250, holdMs: 1000, floorHoldMs: 1500, floorMinIntervalMs: 3000 };

const BLOCK_MS = 20;

export class VoiceActivity {
  speaking = false;
  /** Level of the voice, smoothed over ~200 ms (dBFS): who is loudest among speakers. */
  level = -100;
  private onset = 0;
  private lastVoiceAt = -Infinity;

  constructor(private readonly s: VoiceSettings = VOICE_DEFAULTS) {}

  /** One block's level (dBFS, -Infinity for none/muted) at `now` ms. True when `speaking` changed. */
  push(levelDb: number, now: number): boolean {
    this.level += (Math.max(levelDb, -100) - this.level) * 0.1;
    if (levelDb > this.s.onDb) this.onset = Math.min(this.s.onsetMs, this.onset + BLOCK_MS);
    else this.onset = Math.max(0, this.onset - BLOCK_MS / 2);
    if (this.speaking) {
      if (levelDb > this.s.offDb) this.lastVoiceAt = now;
      if (now - this.lastVoiceAt > this.s.holdMs) {
        this.speaking = false;
        this.onset = 0;
        return true;
      }
      return false;
    }
    if (this.onset >= this.s.onsetMs) {
      this.speaking = true;
      this.lastVoiceAt = now;
      return true;
    }
    return false;
  }
}

export class Floor {
  holder: string | undefined;
  private candidate: string | undefined;
  private candidateSince = 0;
  private changedAt = -Infinity;

  constructor(private readonly s: VoiceSettings = VOICE_DEFAULTS) {}

  /** The speakers now (id → smoothed level). True when the floor moved. */
  update(speakers: ReadonlyMap<string, number>, now: number): boolean {
    let loudest: string | undefined;
    for (const [id, level] of speakers) if (loudest === undefined || level > speakers.get(loudest)!) loudest = id;
    if (loudest !== this.candidate) {
      this.candidate = loudest;
      this.candidateSince = now;
    }
    if (loudest === undefined || loudest === this.holder) return false;
    // The first speaker takes an empty floor at once; later ones must hold it a while.
    const held = this.holder === undefined || now - this.candidateSince >= this.s.floorHoldMs;
    if (!held || now - this.changedAt < this.s.floorMinIntervalMs) return false;
    this.holder = loudest;
    this.changedAt = now;
    return true;
  }

  /** The holder left the room: the floor is free. */
  release(id: string): void {
    if (this.holder === id) this.holder = undefined;
  }
}
