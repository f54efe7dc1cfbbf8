/**
 * HTML building for the console, escaped by default: `html\`…\`` escapes every interpolated value
 * unless it is itself `Html` (built the same way).
 * Arrays are joined; null, undefined and false render nothing.
 */
import { esc } from '../../common/web.js';

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

function part(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return v.map(part).join('');
  return esc(v);
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += part(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** A query string from the defined, non-empty values (keys and values URL-encoded). */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** "2024-05-01 12:03 UTC" */
export function utc(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** A relative time ("5 min ago") with the exact time in `datetime` and `title`; "never" for none. */
export function ago(iso: string | null | undefined, now: number, never = 'never'): Html {
  if (!iso) return html`<span class="muted">${never}</span>`;
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return html`${iso}`;
  const s = Math.round((now - t) / 1000);
  const a = Math.abs(s);
  const n = a < 5 ? '' : a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86_400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86_400)} d`;
  const rel = n === '' ? 'just now' : s >= 0 ? `${n} ago` : `in ${n}`;
  return html`<time datetime="${new Date(t).toISOString()}" title="${utc(iso)}">${rel}</time>`;
}

const GROUPED = new Intl.NumberFormat('en-US');

/** A count as the console shows it: 12,345 (a fleet's 50000 devices read as 5,000 at a glance). */
export function count(n: number): string {
  return GROUPED.format(n);
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}
