/**
 * What the vendor adapters share: JSON shape checks and field readers, transport errors, batching,
 * bounded concurrency, single flight.
 */
import { UemError } from '../adapter.js';

export type Json = Record<string, unknown>;

export const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A non-empty string, else null (the vendors write "" for blank text fields). */
export function str(v: unknown): string | null {
  return typeof v === 'string' && v.trim() !== '' ? v : null;
}

/**
 * A whole number given as a number or a numeric string ("5614"). `signed: false` refuses a string
 * with a minus sign: Hexnode's numbers (ids, counts, per_page in its next links) are never negative.
 */
export function intOf(v: unknown, { signed }: { signed: boolean }): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string' && (signed ? /^-?\d{1,15}$/ : /^\d{1,15}$/).test(v.trim())) return Number(v);
  return undefined;
}

/** A failed call that got no HTTP answer: a timeout or abort is `timeout`, anything else `unavailable`. */
export function transportError(what: string, e: unknown): UemError {
  if (e instanceof UemError) return e;
  const name = (e as { name?: unknown } | null)?.name;
  const msg = e instanceof Error ? e.message : String(e);
  if (name === 'AbortError' || name === 'TimeoutError') return new UemError('timeout', `${what}: ${msg}`, { cause: e });
  return new UemError('unavailable', `${what}: ${msg}`, { cause: e });
}

/**
 * One call per key at a time: concurrent callers asking for the same key (say, the same tag to
 * create) share the call in flight instead of each creating it.
 */
export function singleFlight<T>(): (key: string, run: () => Promise<T>) => Promise<T> {
  const inFlight = new Map<string, Promise<T>>();
  return (key, run) => {
    let p = inFlight.get(key);
    if (!p) {
      p = run().finally(() => inFlight.delete(key));
      inFlight.set(key, p);
    }
    return p;
  };
}

/** `items` in consecutive slices of at most `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` over `items`, at most `limit` at once; the first failure stops new work and is thrown. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (e) {
        failed ??= { error: e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.error;
}
