/** A hand-made SVG grouped bar chart (no dependencies) for docs/bench.svg. */

export interface Series {
  name: string;
  color: string;
  values: number[];
}

export interface Panel {
  title: string;
  subtitle: string;
  groups: string[];
  series: Series[];
  format: (v: number) => string;
  /** For the axis ticks (default: format). */
  axisFormat?: (v: number) => string;
  width: number;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const e = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * e >= v) return m * e;
  return 10 * e;
}

function panel(p: Panel, x0: number, y0: number, h: number): string {
  const out: string[] = [];
  const left = 44;
  const top = 44;
  const bottom = 28;
  const plotW = p.width - left - 12;
  const plotH = h - top - bottom;
  const max = niceMax(Math.max(...p.series.flatMap((s) => s.values.filter((v) => Number.isFinite(v)))) * 1.12);
  out.push(`<g transform="translate(${x0},${y0})">`);
  out.push(`<text x="${left}" y="16" class="t">${esc(p.title)}</text>`);
  out.push(`<text x="${left}" y="31" class="s">${esc(p.subtitle)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    const y = top + plotH - (plotH * i) / 4;
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y}" y2="${y}" class="g"/>`);
    out.push(`<text x="${left - 4}" y="${y + 3}" class="a" text-anchor="end">${esc((p.axisFormat ?? p.format)(v))}</text>`);
  }
  const gw = plotW / p.groups.length;
  const bw = Math.min(34, (gw - 14) / p.series.length);
  p.groups.forEach((g, gi) => {
    const gx = left + gi * gw + (gw - bw * p.series.length) / 2;
    p.series.forEach((s, si) => {
      const v = s.values[gi] ?? NaN;
      const bh = Number.isFinite(v) ? (plotH * v) / max : 0;
      const x = gx + si * bw;
      const y = top + plotH - bh;
      out.push(`<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(bw - 2).toFixed(1)}" height="${bh.toFixed(1)}" fill="${s.color}"><title>${esc(`${s.name}, ${g}: ${p.format(v)}`)}</title></rect>`);
      out.push(`<text x="${(x + (bw - 2) / 2).toFixed(1)}" y="${(y - 3).toFixed(1)}" class="v" text-anchor="middle">${esc(Number.isFinite(v) ? p.format(v) : 'n/a')}</text>`);
    });
    out.push(`<text x="${(left + gi * gw + gw / 2).toFixed(1)}" y="${top + plotH + 16}" class="a" text-anchor="middle">${esc(g)}</text>`);
  });
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" class="x"/>`);
  out.push('</g>');
  return out.join('\n');
}

export function barChartSvg(o: { title: string; footer: string; panels: Panel[]; legend: Array<{ name: string; color: string }>; height?: number }): string {
  const h = o.height ?? 300;
  const width = o.panels.reduce((a, p) => a + p.width, 0) + 20;
  const total = h + 70;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${total}" viewBox="0 0 ${width} ${total}" font-family="Helvetica, Arial, sans-serif">`);
  parts.push(`<style>
  .t { font-size: 13px; font-weight: bold; fill: #222; }
  .s { font-size: 11px; fill: #666; }
  .a { font-size: 10px; fill: #555; }
  .v { font-size: 9px; fill: #333; }
  .g { stroke: #e4e4e4; stroke-width: 1; }
  .x { stroke: #999; stroke-width: 1; }
  .h { font-size: 15px; font-weight: bold; fill: #111; }
  .f { font-size: 10px; fill: #777; }
</style>`);
  parts.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  parts.push(`<text x="14" y="22" class="h">${esc(o.title)}</text>`);
  let lx = width - 14;
  for (const l of [...o.legend].reverse()) {
    const w = 18 + l.name.length * 6.5;
    lx -= w;
    parts.push(`<rect x="${lx}" y="11" width="12" height="12" fill="${l.color}"/><text x="${lx + 16}" y="21" class="a">${esc(l.name)}</text>`);
    lx -= 10;
  }
  let x = 10;
  for (const p of o.panels) {
    parts.push(panel(p, x, 34, h));
    x += p.width;
  }
  parts.push(`<text x="14" y="${total - 10}" class="f">${esc(o.footer)}</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
