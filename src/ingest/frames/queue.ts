/*
 * The two bounds of the frame path: a fixed-capacity FIFO that drops its oldest entry when full (the vision model
 * wants the newest frames, a stale one is worth less than a fresh one), and a decode limiter with a bounded wait
 * list (CPU-heavy decodes run a few at a time; a push that would wait beyond the list is refused, not queued).
 */

/** Ring buffer FIFO; `push` on a full queue evicts and returns the oldest entry. */
export class DropOldestQueue<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new RangeError(`capacity must be ≥ 1, got ${capacity}`);
    this.items = new Array(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Appends; returns the entry dropped to make room, if any. */
  push(item: T): T | undefined {
    let dropped: T | undefined;
    if (this.count === this.capacity) {
      dropped = this.shift();
    }
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
    return dropped;
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return item;
  }

  clear(): number {
    const n = this.count;
    while (this.count > 0) this.shift();
    return n;
  }
}

/** At most `concurrency` holders; at most `maxWaiting` callers wait when `tryAcquire` is used. */
export class DecodeLimiter {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly maxWaiting: number,
  ) {}

  get waiting(): number {
    return this.waiters.length;
  }

  get running(): number {
    return this.active;
  }

  /** Waits for a slot without a bound on the wait list (for the single directory worker). */
  acquire(): Promise<() => void> {
    if (this.active < this.concurrency) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => this.waiters.push(() => resolve(this.releaser())));
  }

  /** A slot, or undefined when every slot is busy and the wait list is full. */
  tryAcquire(): Promise<() => void> | undefined {
    if (this.active >= this.concurrency && this.waiters.length >= this.maxWaiting) return undefined;
    return this.acquire();
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.active--;
    };
  }
}
