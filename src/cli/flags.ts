/**
 * A numeric command-line flag: undefined when absent, the number when it parses and `ok` accepts it; otherwise the
 * command's own usage error naming the flag, what it expects and what it got.
 */
export function numberFlag(
  flag: string,
  raw: string | undefined,
  ok: (n: number) => boolean,
  what: string,
  usageError: (message: string) => Error,
): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || !ok(n)) throw usageError(`--${flag} expects ${what}, got "${raw}"`);
  return n;
}
