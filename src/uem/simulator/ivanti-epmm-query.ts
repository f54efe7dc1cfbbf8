/**
 * The search language of EPMM's v2 `query` parameter (and of dynamic label criteria), as far as the
 * simulator speaks it: comparisons joined with AND / OR / NOT and parentheses, e.g.
 *
 *   common.status = "ACTIVE" AND ("common.compliant" = false OR common.quarantined = true)
 *   common.model "starts with" "iPhone"
 *
 * Field names may be quoted; operators are = != < <= > >= and the quoted words "contains",
 * "does not contain", "starts with", "ends with" (quotes optional). Values are "strings", numbers,
 * true / false, or bare words (taken as strings, as clients send IP addresses unquoted). An empty
 * query matches everything. Pure: parse once, evaluate against flat dotted-key records.
 */

export type QueryValue = string | number | boolean | null;
export type QueryRecord = Readonly<Record<string, QueryValue | undefined>>;

export type CompareOp = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'contains' | 'does not contain' | 'starts with' | 'ends with';

export type QueryNode =
  | { kind: 'all' }
  | { kind: 'and' | 'or'; left: QueryNode; right: QueryNode }
  | { kind: 'not'; inner: QueryNode }
  | { kind: 'compare'; field: string; op: CompareOp; value: QueryValue };

export class QueryError extends Error {
  override readonly name = 'QueryError';
}

type Token = { t: 'word'; v: string } | { t: 'quoted'; v: string } | { t: 'op'; v: string } | { t: 'paren'; v: '(' | ')' };

const WORD_OPS = new Set<string>(['contains', 'does not contain', 'starts with', 'ends with']);

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      out.push({ t: 'paren', v: c });
      i++;
    } else if (c === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= s.length) throw new QueryError('unterminated quoted string');
        const d = s[i]!;
        if (d === '\\' && i + 1 < s.length) {
          v += s[i + 1]!;
          i += 2;
        } else if (d === '"') {
          i++;
          break;
        } else {
          v += d;
          i++;
        }
      }
      out.push({ t: 'quoted', v });
    } else if (/[=!<>]/.test(c)) {
      const two = s.slice(i, i + 2);
      if (two === '!=' || two === '<=' || two === '>=') {
        out.push({ t: 'op', v: two });
        i += 2;
      } else if (c === '!') {
        throw new QueryError(`unexpected "!" at ${i}`);
      } else {
        out.push({ t: 'op', v: c });
        i++;
      }
    } else {
      const m = /^[^\s()"=!<>]+/.exec(s.slice(i))!;
      out.push({ t: 'word', v: m[0] });
      i += m[0].length;
    }
  }
  return out;
}

export interface ParseOptions {
  /** Refuses fields it returns false for (the API answers 400 for an unknown search field). */
  knownField?: (name: string) => boolean;
}

export function parseQuery(text: string, opts: ParseOptions = {}): QueryNode {
  const tokens = tokenize(text);
  if (tokens.length === 0) return { kind: 'all' };
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const isKeyword = (tok: Token | undefined, kw: string): boolean => tok?.t === 'word' && tok.v.toUpperCase() === kw;

  const orExpr = (): QueryNode => {
    let left = andExpr();
    while (isKeyword(peek(), 'OR')) {
      pos++;
      left = { kind: 'or', left, right: andExpr() };
    }
    return left;
  };
  const andExpr = (): QueryNode => {
    let left = notExpr();
    while (isKeyword(peek(), 'AND')) {
      pos++;
      left = { kind: 'and', left, right: notExpr() };
    }
    return left;
  };
  const notExpr = (): QueryNode => {
    if (isKeyword(peek(), 'NOT')) {
      pos++;
      return { kind: 'not', inner: notExpr() };
    }
    return primary();
  };
  const primary = (): QueryNode => {
    const tok = peek();
    if (tok?.t === 'paren' && tok.v === '(') {
      pos++;
      const inner = orExpr();
      const close = peek();
      if (close?.t !== 'paren' || close.v !== ')') throw new QueryError('missing ")"');
      pos++;
      return inner;
    }
    return comparison();
  };
  const comparison = (): QueryNode => {
    const f = peek();
    if (f?.t !== 'word' && f?.t !== 'quoted') throw new QueryError(f ? `expected a field name, got "${f.v}"` : 'expected a field name at the end of the query');
    pos++;
    const field = f.v;
    if (opts.knownField && !opts.knownField(field)) throw new QueryError(`unknown search field "${field}"`);
    const op = operator();
    const v = peek();
    if (v?.t !== 'word' && v?.t !== 'quoted') throw new QueryError(`expected a value after "${field} ${op}"`);
    pos++;
    return { kind: 'compare', field, op, value: v.t === 'quoted' ? v.v : bareValue(v.v) };
  };
  const operator = (): CompareOp => {
    const tok = peek();
    if (tok?.t === 'op') {
      pos++;
      return tok.v as CompareOp;
    }
    if (tok?.t === 'quoted' && WORD_OPS.has(tok.v.toLowerCase())) {
      pos++;
      return tok.v.toLowerCase() as CompareOp;
    }
    // Unquoted word operators: "contains", "starts with", "ends with", "does not contain".
    for (const w of WORD_OPS) {
      const parts = w.split(' ');
      if (parts.every((p, k) => tokens[pos + k]?.t === 'word' && tokens[pos + k]!.v.toLowerCase() === p)) {
        pos += parts.length;
        return w as CompareOp;
      }
    }
    throw new QueryError(tok ? `expected an operator, got "${tok.v}"` : 'expected an operator at the end of the query');
  };

  const node = orExpr();
  if (pos < tokens.length) throw new QueryError(`unexpected "${tokens[pos]!.v}"`);
  return node;
}

function bareValue(w: string): QueryValue {
  const l = w.toLowerCase();
  if (l === 'true') return true;
  if (l === 'false') return false;
  if (l === 'null') return null;
  if (/^-?\d+(\.\d+)?$/.test(w)) return Number(w);
  return w;
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'accent' });

function compare(actual: QueryValue | undefined, op: CompareOp, want: QueryValue): boolean {
  if (actual === undefined || actual === null) {
    // A field the device does not have only matches "= null", "!=" and "does not contain".
    if (want === null) return op === '=';
    return op === '!=' || op === 'does not contain';
  }
  if (want === null) return op === '!=';
  const a = String(actual);
  const w = String(want);
  switch (op) {
    case '=':
      return collator.compare(a, w) === 0;
    case '!=':
      return collator.compare(a, w) !== 0;
    case '<':
      return collator.compare(a, w) < 0;
    case '<=':
      return collator.compare(a, w) <= 0;
    case '>':
      return collator.compare(a, w) > 0;
    case '>=':
      return collator.compare(a, w) >= 0;
    case 'contains':
      return a.toLowerCase().includes(w.toLowerCase());
    case 'does not contain':
      return !a.toLowerCase().includes(w.toLowerCase());
    case 'starts with':
      return a.toLowerCase().startsWith(w.toLowerCase());
    case 'ends with':
      return a.toLowerCase().endsWith(w.toLowerCase());
  }
}

/** True when `r` matches. Strings compare case-insensitively, numbers and versions numerically ("9" < "10"). */
export function matches(node: QueryNode, r: QueryRecord): boolean {
  switch (node.kind) {
    case 'all':
      return true;
    case 'and':
      return matches(node.left, r) && matches(node.right, r);
    case 'or':
      return matches(node.left, r) || matches(node.right, r);
    case 'not':
      return !matches(node.inner, r);
    case 'compare':
      return compare(r[node.field], node.op, node.value);
  }
}
