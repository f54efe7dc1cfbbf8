/**
 * A real browser for end-to-end tests of the connector's local page: Debian's chromium driven by
 * playwright-core (never `playwright install`), plus in-page checks (labels, headings, contrast,
 * horizontal overflow) and a recorder of every request and CSP complaint a page makes.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.UEMLINK_CHROMIUM ?? '/usr/bin/chromium';

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
}

/** Where screenshots go (git-ignored). */
export function shotsDir(sub: string): string {
  const dir = join(process.cwd(), 'test-results', sub);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** What a page did that a local, offline page must not do. */
export interface PageRecorder {
  /** Every URL the page requested. */
  requests: string[];
  /** Console messages about Content-Security-Policy violations, and uncaught page errors. */
  violations: string[];
}

/** Opens a page in `ctx` that records its requests and CSP complaints. */
export async function recordedPage(ctx: BrowserContext): Promise<{ page: Page; rec: PageRecorder }> {
  const page = await ctx.newPage();
  const rec: PageRecorder = { requests: [], violations: [] };
  page.on('request', (r) => rec.requests.push(r.url()));
  page.on('console', (m) => {
    if (/Content.Security.Policy|Refused to (load|apply|execute|connect|frame)/i.test(m.text())) rec.violations.push(m.text());
  });
  page.on('pageerror', (e) => rec.violations.push(`page error: ${e.message}`));
  return { page, rec };
}

/**
 * Accessibility basics, checked in the DOM: `lang`, exactly one h1, unique ids, every visible form
 * control labelled (label[for], a wrapping label, aria-label or aria-labelledby), every label[for]
 * pointing at a control, every button named, a non-empty status badge.
 */
export function a11yProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const d = (globalThis as any).document;
    const out: string[] = [];
    if (!d.documentElement.getAttribute('lang')) out.push('<html> has no lang');
    const h1 = d.querySelectorAll('h1').length;
    if (h1 !== 1) out.push(`${h1} h1 elements (want exactly one)`);
    if (!d.title.trim()) out.push('no <title>');
    const seen = new Map<string, number>();
    for (const el of d.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) ?? 0) + 1);
    for (const [id, n] of seen) if (n > 1) out.push(`id "${id}" is used ${n} times`);
    for (const el of d.querySelectorAll('input, textarea, select')) {
      if (el.type === 'hidden') continue;
      const id = el.id as string;
      const byFor = id ? d.querySelector(`label[for="${id.replace(/"/g, '\\"')}"]`) : null;
      const named = (byFor && byFor.textContent.trim()) || (el.closest('label')?.textContent.trim() ?? '') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) out.push(`unlabelled ${el.tagName.toLowerCase()} name="${el.name}" id="${id}"`);
    }
    for (const l of d.querySelectorAll('label[for]')) {
      const target = d.getElementById(l.getAttribute('for'));
      if (!target || !/^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) out.push(`label "${l.textContent.trim()}" points at no control (for="${l.getAttribute('for')}")`);
    }
    for (const b of d.querySelectorAll('button')) if (!b.textContent.trim() && !b.getAttribute('aria-label')) out.push('a button without a name');
    for (const a of d.querySelectorAll('a')) if (!a.textContent.trim() && !a.getAttribute('aria-label')) out.push(`a link without text (${a.href})`);
    const badge = d.querySelector('header .badge');
    if (!badge || !badge.textContent.trim()) out.push('no status badge text');
    return out;
  });
}

/**
 * WCAG AA contrast of every visible element that has its own text: 4.5:1, or 3:1 for large text
 * (≥ 24 px, or ≥ 18.66 px bold). The background is the first opaque one among the ancestors.
 */
export function contrastProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const w = globalThis as any;
    const d = w.document;
    const parse = (c: string): number[] | undefined => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return undefined;
      const p = m[1]!.split(/[ ,/]+/).filter(Boolean).map(Number);
      return [p[0]!, p[1]!, p[2]!, p.length > 3 ? p[3]! : 1];
    };
    const lum = (c: number[]): number => {
      const f = (v: number): number => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(c[0]!) + 0.7152 * f(c[1]!) + 0.0722 * f(c[2]!);
    };
    const bgOf = (el: any): number[] => {
      for (let e = el; e; e = e.parentElement) {
        const c = parse(w.getComputedStyle(e).backgroundColor);
        if (c && c[3]! >= 0.99) return c;
      }
      return [255, 255, 255, 1];
    };
    const out: string[] = [];
    for (const el of d.querySelectorAll('body *')) {
      const own = Array.prototype.some.call(el.childNodes, (n: any) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const st = w.getComputedStyle(el);
      if (st.visibility === 'hidden' || st.display === 'none' || el.getClientRects().length === 0) continue;
      if (el.closest('.sr')) continue;
      const fg = parse(st.color);
      if (!fg) continue;
      const bg = bgOf(el);
      const a = fg[3]!;
      const mixed = [0, 1, 2].map((i) => fg[i]! * a + bg[i]! * (1 - a));
      const l1 = lum(mixed);
      const l2 = lum(bg);
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      const size = parseFloat(st.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) out.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 40)}": contrast ${ratio.toFixed(2)}:1`);
    }
    return out;
  });
}

/**
 * Horizontal overflow: the document wider than the viewport, or an element sticking out of the
 * viewport's right edge outside a horizontally scrollable container.
 */
export function overflowProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const w = globalThis as any;
    const d = w.document;
    const out: string[] = [];
    const vw = d.documentElement.clientWidth;
    if (d.documentElement.scrollWidth > vw) out.push(`the document is ${d.documentElement.scrollWidth} px wide in a ${vw} px viewport`);
    const inScroller = (el: any): boolean => {
      for (let e = el.parentElement; e && e !== d.body; e = e.parentElement) {
        const o = w.getComputedStyle(e).overflowX;
        if (o === 'auto' || o === 'scroll') return true;
      }
      return false;
    };
    for (const el of d.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      if (r.right > vw + 1 && !inScroller(el)) out.push(`${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${el.className} ends at ${Math.round(r.right)} px (viewport ${vw} px)`);
    }
    return out.slice(0, 20);
  });
}
