import { randomBytes } from "node:crypto";
import { link, mkdir, open, readFile, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { GlassdError } from "./errors.js";

/*
 * Small file helpers for secrets, credential stores and stored frames. Everything here is written with mode 0600 through a temp
 * file + fsync + rename, so a crash or power cut (common beside a production line) leaves either the old file or the
 * new one, never a truncated users file that locks everyone out.
 */

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException)?.code === "ENOENT";

/** Creates `dir` (and parents) with mode 0700 when missing. */
export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

/** Writes `data` to a new temp file (mode 0600) in `dir` and fsyncs it; returns its path. */
async function writeSyncedTemp(dir: string, name: string, data: string | Buffer): Promise<string> {
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  return tmp;
}

/** A rename or link is only durable once the directory entry is: fsync the directory (best effort). */
async function syncDir(dir: string): Promise<void> {
  const dh = await open(dir, "r").catch(() => undefined);
  if (dh)
    await dh
      .sync()
      .catch(() => {})
      .finally(() => dh.close());
}

/** Atomically replaces `path` with `data`, mode 0600. */
export async function writeFileAtomic(path: string, data: string | Buffer): Promise<void> {
  const dir = dirname(path);
  await ensureDir(dir);
  const tmp = await writeSyncedTemp(dir, basename(path), data);
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
}

/**
 * Creates `path` with `data` (mode 0600) only if it does not exist yet. Returns false when another process got
 * there first, so two daemons starting at once agree on one generated secret. Crash-safe: the content is written
 * and synced to a temporary file first, then hard-linked into place (link fails if `path` exists, atomically), so
 * a crash can leave a stray temp file but never an empty or half-written `path`.
 */
export async function createFileExclusive(path: string, data: string | Buffer): Promise<boolean> {
  const dir = dirname(path);
  await ensureDir(dir);
  const tmp = await writeSyncedTemp(dir, basename(path), data);
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
  await syncDir(dir);
  return true;
}

/** Reads a secret file, dropping one trailing newline (`echo secret > file` adds it). Undefined when missing. */
export async function readSecretFile(path: string): Promise<Buffer | undefined> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw new GlassdError(`cannot read secret file ${path}: ${(err as Error).message}`, {
      code: "secret_unreadable",
      cause: err,
    });
  }
  let end = buf.length;
  if (end > 0 && buf[end - 1] === 0x0a) end--;
  if (end > 0 && buf[end - 1] === 0x0d) end--;
  return buf.subarray(0, end);
}

/** A warning when `path` is readable or writable by group/others; undefined when fine or not checkable. */
export async function loosePermissionWarning(path: string): Promise<string | undefined> {
  if (process.platform === "win32") return undefined;
  try {
    const st = await stat(path);
    if (st.mode & 0o077)
      return `${path} has mode ${(st.mode & 0o777).toString(8)}; it holds credentials, run: chmod 600 ${path}`;
  } catch {
    // Missing files are reported by whoever needs them.
  }
  return undefined;
}

/**
 * A JSON document on disk with an in-memory copy. Reads notice edits made by other processes (the `glassd` CLI adds
 * users while the daemon runs) by comparing inode/mtime/size, at most once per `refreshMs`. Updates are serialised
 * and re-read the file first, so an edit from the CLI is never overwritten by a stale copy.
 */
export class JsonFileStore<T> {
  private value: T | undefined;
  private sig = "";
  private checkedAt = Number.NEGATIVE_INFINITY;
  private chain: Promise<unknown> = Promise.resolve();
  private badSig = "";
  private readonly refreshMs: number;
  private readonly onReloadError: (err: GlassdError) => void;

  constructor(
    readonly path: string,
    /** Validates parsed JSON; throws a message naming what is wrong. */
    private readonly parse: (raw: unknown) => T,
    private readonly empty: () => T,
    opts: { refreshMs?: number; onReloadError?: (err: GlassdError) => void } = {},
  ) {
    this.refreshMs = opts.refreshMs ?? 1000;
    this.onReloadError = opts.onReloadError ?? (() => {});
  }

  /**
   * Current contents (the empty value when the file does not exist). Throws when the first read fails; a file that
   * turns bad later (a hand edit gone wrong) keeps the last good copy in service, reported once via onReloadError,
   * rather than locking every user out of the line's dashboards.
   */
  async get(): Promise<T> {
    const now = performance.now();
    if (this.value !== undefined && now - this.checkedAt < this.refreshMs) return this.value;
    this.checkedAt = now;
    const sig = await this.signature();
    if (this.value !== undefined && (sig === this.sig || sig === this.badSig)) return this.value;
    try {
      await this.load(sig);
    } catch (err) {
      if (this.value === undefined || !(err instanceof GlassdError)) throw err;
      this.badSig = sig;
      this.onReloadError(err);
    }
    return this.value as T;
  }

  /** Applies `fn` to the freshest contents and writes the result atomically. Calls are serialised. */
  update<R>(fn: (current: T) => { next: T; result: R } | Promise<{ next: T; result: R }>): Promise<R> {
    const run = async () => {
      await this.load(await this.signature());
      const { next, result } = await fn(this.value as T);
      await writeFileAtomic(this.path, `${JSON.stringify(next, null, 2)}\n`);
      this.value = next;
      this.sig = await this.signature();
      this.checkedAt = performance.now();
      return result;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  private async signature(): Promise<string> {
    try {
      const st = await stat(this.path);
      return `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch (err) {
      if (isMissing(err)) return "missing";
      throw err;
    }
  }

  private async load(sig: string): Promise<void> {
    if (sig === "missing") {
      this.value = this.empty();
      this.sig = sig;
      return;
    }
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      throw new GlassdError(`cannot read ${this.path}: ${(err as Error).message}`, { code: "auth_store", cause: err });
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new GlassdError(`${this.path} is not valid JSON (${(err as Error).message}); fix or restore it`, {
        code: "auth_store",
        cause: err,
      });
    }
    try {
      this.value = this.parse(raw);
    } catch (err) {
      throw new GlassdError(`${this.path}: ${(err as Error).message}; fix or restore it`, {
        code: "auth_store",
        cause: err,
      });
    }
    this.sig = sig;
  }
}
