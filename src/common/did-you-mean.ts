/**
 * "Did you mean" for misspelt names (config keys, mostly): the candidate closest to what was typed,
 * if it is close enough to be the likely intent. Pure; no I/O.
 */

/** Edit distance counting a swap of two neighbours as one edit ("targest" → "targets" is 1). */
export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  // Three rolling rows: the swap rule looks two rows back.
  let back2 = new Array<number>(n + 1).fill(0);
  let back1 = Array.from({ length: n + 1 }, (_, j) => j);
  let row = new Array<number>(n + 1).fill(0);
  for (let i = 1; i <= m; i++) {
    row[0] = i;
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(back1[j]! + 1, row[j - 1]! + 1, back1[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, back2[j - 2]! + 1);
      row[j] = d;
    }
    [back2, back1, row] = [back1, row, back2];
  }
  return back1[n]!;
}

/**
 * The candidate the typed word most likely meant: one that differs only in letter case, else the
 * nearest within 2 edits (1 for words of up to 4 letters, so that short keys are not "corrected" into
 * unrelated ones). Ties go to the first candidate; none close enough gives undefined.
 */
export function didYouMean(typed: string, candidates: Iterable<string>): string | undefined {
  const lower = typed.toLowerCase();
  let best: string | undefined;
  let bestDistance = typed.length <= 4 ? 2 : 3;
  for (const c of candidates) {
    if (c === typed) continue;
    if (c.toLowerCase() === lower) return c;
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}
