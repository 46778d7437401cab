/*
 * Host-side sequence bookkeeping of the firmware bridge (PROTOCOL.md §4), kept free of I/O so it can be reasoned
 * about and tested on its own.
 *
 * The device numbers batches (`seq`) and samples (`first_sample`) from the start of each boot, 32 bits, wrapping.
 * glassd needs one strictly increasing sequence per source across reboots, reconnects and daemon restarts (the
 * store counts anything at or below its last seq as a duplicate and any jump as a gap). The mapping is:
 *
 *     host seq = base(boot) + unwrapped sample index + 1
 *
 * with `base` fixed per boot: at the first contact with a device the first batch accepted continues right after the
 * last stored seq; after a reboot the new boot continues after everything accepted from the old one, plus what the
 * old boot's last heartbeat proves was produced and never received. A resent batch maps to the same host seqs as
 * the first time, so duplicates are recognised by host seq alone. `{boot_id, base}` is persisted before any sample
 * of a new mapping reaches the sink, so a restarted daemon maps resends identically.
 *
 * Batches are accepted strictly in order: the next sample index, or a jump when the device says (by `oldest`) that
 * the batches in between are gone from its ring — a gap, reported with its size. A batch after a hole the device
 * can still fill is held back (not accepted, not acknowledged): the device's go-back-N resend brings it in order.
 */

const TWO32 = 2 ** 32;

/** What is persisted per device. */
export interface EpochRecord {
  boot_id: number;
  base: number;
}

export interface Gap {
  /** Host seq of the last sample before the gap. */
  after: number;
  /** Samples missing. */
  samples: number;
  /** Batches missing, when the host knows which batch it expected. */
  batches: number | undefined;
  /** `device_dropped`: the device's ring overflowed; `device_reset`: the device rebooted with data unsent. */
  reason: "device_dropped" | "device_reset";
}

/** Where the accepted (or durable) stream stands. */
export interface Cursor {
  /** Highest host seq. */
  host: number;
  /** Unwrapped index of the next expected sample; undefined before the first batch of a boot. */
  ext: number | undefined;
  /** Unwrapped seq of the next expected batch; undefined when unknown (first contact, daemon restart). */
  batch: number | undefined;
}

export type Verdict =
  | {
      kind: "accept";
      /** Host seq of the batch's first sample. */
      hostFirst: number;
      /** Leading samples already accepted (only for a batch that overlaps, which a correct device never sends). */
      skip: number;
      gap: Gap | undefined;
      /** Mapping generation; pass it back to `durable` / `rewind`. */
      gen: number;
      /** Cursor after this batch, for `durable`. */
      after: Cursor;
    }
  | { kind: "duplicate"; durable: boolean; samples: number }
  | { kind: "hold" };

export interface SequenceStats {
  accepted_batches: number;
  accepted_samples: number;
  duplicate_batches: number;
  duplicate_samples: number;
  /** Batches held back behind a hole the device will refill (out of order). */
  held_batches: number;
  gaps: number;
  missing_samples: number;
  missing_batches: number;
  device_resets: number;
  /** Samples a device boot produced before glassd first heard from it (its `first_sample` at first contact). */
  unseen_at_first_contact: number;
}

/** `b`, unwrapped to the 64-bit value nearest to `ref` (RFC 1982 serial arithmetic). */
export function unwrap32(b: number, ref: number): number {
  const delta = (b - (ref % TWO32)) | 0;
  return ref + delta;
}

export class SequenceMapper {
  readonly stats: SequenceStats = {
    accepted_batches: 0,
    accepted_samples: 0,
    duplicate_batches: 0,
    duplicate_samples: 0,
    held_batches: 0,
    gaps: 0,
    missing_samples: 0,
    missing_batches: 0,
    device_resets: 0,
    unseen_at_first_contact: 0,
  };
  /** The epoch changed and must be persisted before samples mapped with it go to the sink. */
  epochDirty = false;
  private boot: number | undefined;
  private base: number | undefined;
  private gen = 0;
  private acc: Cursor;
  private dur: Cursor;
  private durableHost: number;
  /** Samples and batches the old boot is known to have lost, reported with the new boot's first batch. */
  private resetLoss: { samples: number; batches: number | undefined } | undefined;

  /**
   * @param lastHostSeq the last seq stored for this source (`Store.lastSeq(id)`), 0 when none.
   * @param epoch the persisted mapping of the device's current boot, if any.
   */
  constructor(lastHostSeq: number, epoch?: EpochRecord) {
    this.acc = { host: lastHostSeq, ext: undefined, batch: undefined };
    if (epoch) {
      this.boot = epoch.boot_id;
      this.base = epoch.base;
      this.acc.ext = Math.max(0, lastHostSeq - epoch.base);
    }
    this.dur = { ...this.acc };
    this.durableHost = lastHostSeq;
  }

  get epoch(): EpochRecord | undefined {
    return this.boot === undefined || this.base === undefined ? undefined : { boot_id: this.boot, base: this.base };
  }

  get bootId(): number | undefined {
    return this.boot;
  }

  /** Highest host seq accepted so far. */
  get lastAccepted(): number {
    return this.acc.host;
  }

  /**
   * A handshake completed with a device running boot `bootId`. Same boot: resume. Another boot: a reboot — the new
   * boot gets its own base after everything accepted, plus what `lastHeartbeat` (of the old boot) proves was produced
   * and never accepted. Returns that lower bound of lost samples, or undefined when the boot did not change.
   */
  session(
    bootId: number,
    lastHeartbeat?: { boot_id: number; samples_produced: number; last_seq: number },
  ): { reset: false } | { reset: true; lostSamples: number; lostBatches: number | undefined } {
    if (this.boot === bootId) return { reset: false };
    if (this.boot === undefined) {
      this.boot = bootId;
      this.base = undefined;
      this.acc.ext = undefined;
      this.acc.batch = undefined;
      this.dur = { ...this.acc };
      this.gen++;
      return { reset: false };
    }
    let lostSamples = 0;
    let lostBatches: number | undefined;
    if (lastHeartbeat && lastHeartbeat.boot_id === this.boot && this.acc.ext !== undefined) {
      lostSamples = Math.max(0, unwrap32(lastHeartbeat.samples_produced, this.acc.ext) - this.acc.ext);
      if (this.acc.batch !== undefined)
        lostBatches = Math.max(0, unwrap32(lastHeartbeat.last_seq, this.acc.batch) - this.acc.batch + 1);
    }
    this.stats.device_resets++;
    this.boot = bootId;
    this.base = this.acc.host + lostSamples;
    this.acc.ext = 0;
    this.acc.batch = 1;
    this.dur = { ...this.acc };
    this.gen++;
    this.epochDirty = true;
    this.resetLoss = { samples: lostSamples, batches: lostBatches };
    return { reset: true, lostSamples, lostBatches };
  }

  /** Decides what to do with batch `seq` (samples `[firstSample, firstSample + count)`), `oldest` still on the device. */
  classify(seq: number, oldest: number, firstSample: number, count: number): Verdict {
    if (this.boot === undefined) return { kind: "hold" }; // no handshake yet
    const acc = this.acc;
    if (this.base === undefined) {
      // First contact with this boot: start at the oldest batch the device still holds, right after what is stored.
      // What the boot produced before that is not a gap of this source's sequence (it may be a month of data from
      // before glassd was installed) but is counted, so that every sample is accounted for.
      if (seq !== oldest) return this.hold();
      this.base = acc.host - firstSample;
      this.epochDirty = true;
      this.stats.unseen_at_first_contact += firstSample;
      return this.accept(acc.host + 1, 0, count, seq, firstSample, undefined);
    }
    const ext = acc.ext === undefined ? firstSample : unwrap32(firstSample, acc.ext);
    const hostFirst = this.base + ext + 1;
    const hostLast = hostFirst + count - 1;
    if (hostLast <= acc.host) {
      this.stats.duplicate_batches++;
      this.stats.duplicate_samples += count;
      return { kind: "duplicate", durable: hostLast <= this.durableHost, samples: count };
    }
    if (hostFirst <= acc.host + 1) return this.accept(hostFirst, acc.host + 1 - hostFirst, count, seq, ext, undefined);
    if (seq !== oldest) return this.hold();
    const batchExt = acc.batch === undefined ? undefined : unwrap32(seq, acc.batch);
    const loss = this.resetLoss;
    const gap: Gap = {
      after: acc.host,
      samples: hostFirst - acc.host - 1,
      batches:
        batchExt === undefined || acc.batch === undefined
          ? undefined
          : batchExt - acc.batch + (loss ? (loss.batches ?? 0) : 0),
      reason: loss ? "device_reset" : "device_dropped",
    };
    return this.accept(hostFirst, 0, count, seq, ext, gap);
  }

  /** The batches accepted up to `after` are durable (the sink resolved). */
  durable(gen: number, after: Cursor): void {
    if (after.host > this.durableHost) this.durableHost = after.host;
    if (gen === this.gen && after.host > this.dur.host) this.dur = { ...after };
  }

  /**
   * The sink failed: forget everything accepted after the last durable batch of the current boot, so that the
   * device's resend is accepted again. Returns false when the failed batches belonged to an earlier boot (the device
   * rebooted since: they cannot be resent and are lost).
   */
  rewind(gen: number): boolean {
    if (gen !== this.gen) return false;
    this.acc = { ...this.dur };
    return true;
  }

  private hold(): Verdict {
    this.stats.held_batches++;
    return { kind: "hold" };
  }

  private accept(
    hostFirst: number,
    skip: number,
    count: number,
    seq: number,
    ext: number,
    gap: Gap | undefined,
  ): Verdict {
    const acc = this.acc;
    const batchExt = acc.batch === undefined ? seq : unwrap32(seq, acc.batch);
    acc.host = hostFirst + count - 1;
    acc.ext = ext + count;
    acc.batch = batchExt + 1;
    this.resetLoss = undefined;
    this.stats.accepted_batches++;
    this.stats.accepted_samples += count - skip;
    if (gap && gap.samples > 0) {
      this.stats.gaps++;
      this.stats.missing_samples += gap.samples;
      this.stats.missing_batches += gap.batches ?? 0;
    }
    return {
      kind: "accept",
      hostFirst: hostFirst + skip,
      skip,
      gap: gap && gap.samples > 0 ? gap : undefined,
      gen: this.gen,
      after: { ...acc },
    };
  }
}
