import type { Database } from "lmdb";
import type { Store } from "../storage/index.js";

/*
 * A durable, ordered, byte-budgeted FIFO in its own LMDB sub-database (Store.openDatabase), one per publisher.
 *
 *   x:outbound.<name>        key: integer (ascending = publish order) → { kind, payload, enqueued_at, bytes }
 *   x:outbound.<name>.meta   "m" → { next, bytes, depth, dropped }
 *
 * Entries and the running totals change in the same transaction, so the totals are exact after any crash. Beyond
 * `maxBytes` the oldest entries are dropped (counted) in the transaction that adds the new one. An entry is deleted
 * only after the broker acknowledged it (`remove`).
 */

export interface QueueEntry {
  kind: string;
  payload: unknown;
  /** ms epoch when it was queued. */
  enqueued_at: number;
  bytes: number;
}

export interface QueueStats {
  depth: number;
  bytes: number;
  max_bytes: number;
  dropped: number;
}

interface Meta {
  next: number;
  bytes: number;
  depth: number;
  dropped: number;
}

/** Fixed cost per entry on top of its JSON size (key, record framing, LMDB node header). */
const ENTRY_OVERHEAD = 48;

export class OutboundQueue {
  private readonly db: Database<QueueEntry, number>;
  private readonly metaDb: Database<Meta, string>;
  private meta: Meta;

  constructor(
    private readonly store: Pick<Store, "openDatabase" | "transaction">,
    readonly name: string,
    readonly maxBytes: number,
  ) {
    this.db = store.openDatabase<QueueEntry, number>(`outbound.${name}`);
    this.metaDb = store.openDatabase<Meta, string>(`outbound.${name}.meta`);
    this.meta = this.metaDb.get("m") ?? { next: 1, bytes: 0, depth: 0, dropped: 0 };
  }

  /** Size an entry counts against the budget. */
  static sizeOf(kind: string, payload: unknown): number {
    return ENTRY_OVERHEAD + kind.length + Buffer.byteLength(JSON.stringify(payload) ?? "null");
  }

  /**
   * Adds an entry; call inside `Store.transaction` (several queues can take the same message in one commit).
   * Returns how many old entries were dropped to make room.
   */
  stageSync(kind: string, payload: unknown, now: number): number {
    const m = { ...(this.metaDb.get("m") ?? this.meta) };
    const bytes = OutboundQueue.sizeOf(kind, payload);
    this.db.putSync(m.next++, { kind, payload, enqueued_at: now, bytes });
    m.bytes += bytes;
    m.depth++;
    let dropped = 0;
    while (m.bytes > this.maxBytes && m.depth > 0) {
      let victim: { key: number; value: QueueEntry } | undefined;
      for (const e of this.db.getRange({ limit: 1 })) victim = e as { key: number; value: QueueEntry };
      if (!victim) break;
      this.db.removeSync(victim.key);
      m.bytes -= victim.value.bytes;
      m.depth--;
      m.dropped++;
      dropped++;
    }
    this.metaDb.putSync("m", m);
    this.meta = m;
    return dropped;
  }

  /** Adds one entry durably (resolves after the fsync'd commit). */
  push(kind: string, payload: unknown, now: number): Promise<number> {
    return this.store.transaction(() => this.stageSync(kind, payload, now));
  }

  /** Up to `limit` entries with key > `after`, in order. */
  peek(after: number, limit: number): Array<{ key: number; entry: QueueEntry }> {
    const out: Array<{ key: number; entry: QueueEntry }> = [];
    for (const { key, value } of this.db.getRange({ start: after + 1, limit }))
      out.push({ key: key as number, entry: value });
    return out;
  }

  /** Deletes acknowledged entries (a key already dropped is skipped). Durable when resolved. */
  remove(keys: readonly number[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    return this.store.transaction(() => {
      const m = { ...(this.metaDb.get("m") ?? this.meta) };
      for (const k of keys) {
        const e = this.db.get(k);
        if (!e) continue;
        this.db.removeSync(k);
        m.bytes -= e.bytes;
        m.depth--;
      }
      this.metaDb.putSync("m", m);
      this.meta = m;
    });
  }

  stats(): QueueStats {
    const m = this.meta;
    return { depth: m.depth, bytes: m.bytes, max_bytes: this.maxBytes, dropped: m.dropped };
  }
}
