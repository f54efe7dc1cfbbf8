import { expect } from 'chai';
import fc from 'fast-check';
import { checkRelativePath, decodeFully, forwardableRequestHeaders, forwardableResponseHeaders, isAllowed, joinUnderBase } from '../../src/common/http-policy.js';

/**
 * What a typical server does with a path: percent-decode, then resolve dot segments. `windows`: as
 * IIS on Windows also does, fold Unicode compatibility forms (a fullwidth "．") and trim trailing dots
 * and spaces from each segment first.
 */
function normalize(p: string, windows = false): string {
  const out: string[] = [];
  for (let seg of decodeURIComponent(p).split('/')) {
    if (windows) {
      // The worst reading: spaces dropped, a run of dots taken for "..", other trailing dots dropped.
      seg = seg.normalize('NFKC').replace(/[. ]*$/, (tail) => tail.replace(/ /g, ''));
      if (/^\.{2,}$/.test(seg)) seg = '..';
      else if (seg !== '.') seg = seg.replace(/\.+$/, '');
    }
    if (seg === '..') out.pop();
    else if (seg !== '.' && seg !== '') out.push(seg);
  }
  return `/${out.join('/')}`;
}

describe('http policy', () => {
  it('a path that passes can never resolve outside the base path, whatever the server decodes', () => {
    const segChar = fc.constantFrom('a', 'b', '.', '%2e', '%2E', '%2f', '%5c', '%25', '%00', ';', '-', '~', '%20', '..', '%252e', '%EF%BC%8E', '%E2%80%A4');
    const seg = fc.array(segChar, { minLength: 0, maxLength: 4 }).map((a) => a.join(''));
    fc.assert(
      fc.property(fc.array(seg, { minLength: 1, maxLength: 6 }), (segs) => {
        const p = `/${segs.join('/')}`;
        const r = checkRelativePath(p);
        if (!r.ok) return;
        for (const windows of [false, true]) {
          let n: string;
          try {
            n = normalize(joinUnderBase('/API', r.path), windows);
          } catch {
            return; // a server that cannot decode it answers 400 itself
          }
          expect(n === '/API' || n.startsWith('/API/'), `${p} -> ${n}${windows ? ' (Windows)' : ''}`).to.equal(true);
        }
        expect(decodeURIComponent(r.path)).to.not.match(/[\\\u0000\r\n]/);
      }),
      { numRuns: 3000 },
    );
  });

  it('decides every path as the check that always decoded did (the skip for paths without "%" changes nothing)', () => {
    // The check as it was before paths without "%" skipped decoding: the reference.
    const reference = (raw: string): boolean => {
      if (raw.length === 0 || raw[0] !== '/' || raw.length > 8192) return false;
      if (/[\u0000-\u0020\u007f\\#]/.test(raw) || /[^\u0021-\u007e]/.test(raw)) return false;
      const q = raw.indexOf('?');
      const path = q < 0 ? raw : raw.slice(0, q);
      const dq = decodeFully(q < 0 ? '' : raw.slice(q));
      if (dq === undefined || /[\u0000\r\n]/.test(dq)) return false;
      const segments = path.split('/').slice(1);
      for (let i = 0; i < segments.length; i++) {
        const seg = segments[i]!;
        if (seg === '' && i < segments.length - 1) return false;
        const d = decodeFully(seg);
        if (d === undefined || /[/\\\u0000-\u001f\u007f]/.test(d) || /^[. ]+$/.test(d.split(';')[0]!.normalize('NFKC'))) return false;
      }
      return true;
    };
    const part = fc.constantFrom('a', 'Z', '.', '..', ';', ';x', '%', '%2', '%2e', '%2E', '%2f', '%5c', '%25', '%00', '%0a', '%0d', '%c3%a9', '%ff', '%252e', '?', '&', '=', '/', '//', '#', ' ', '\\', '\u00e9', '~');
    const path = fc.array(part, { maxLength: 10 }).map((a) => `/${a.join('')}`);
    fc.assert(
      fc.property(fc.oneof(path, fc.string()), (p) => {
        expect(checkRelativePath(p).ok, p).to.equal(reference(p));
      }),
      { numRuns: 5000 },
    );
  });

  it('accepts a literal "%" sent as %25 (a label "Games 100% blocked"), and still sees escapes next to one', () => {
    expect(checkRelativePath('/api/v2/labels/Games%20100%25%20blocked/add').ok).to.equal(true);
    expect(checkRelativePath('/a/100%25/b?q=5%25').ok).to.equal(true);
    // Decoded once: "%2e%2e%" — the second pass decodes the escapes there and keeps the stray "%".
    expect(decodeFully('%252e%252e%25')).to.equal('..%');
    expect(checkRelativePath('/a/%252e%252e%25%2fx/b').ok, 'an encoded slash beside a stray "%"').to.equal(false);
    expect(checkRelativePath('/a/%E0%A4%A/b').ok, 'malformed as sent').to.equal(false);
    // Escapes of bytes that are not UTF-8 are legal (Latin-1 "M%FCller"), overlong UTF-8 is not.
    expect(checkRelativePath('/labels/Caf%E9?name=M%FCller&x=%FF').ok).to.equal(true);
    for (const p of ['/%c0%ae%c0%ae/secret', '/%C1%9C', '/a/%e0%80%ae/b', '/a/%f0%80%80%ae/b', '/a/%25c0%25ae%25c0%25ae/b']) expect(checkRelativePath(p).ok, p).to.equal(false);
  });

  it('refuses what Windows reads as a dot segment, Unicode dots, and escapes still undone after four decodings', () => {
    for (const p of ['/a/..%20/b', '/a/.../b', '/a/.%20./b', '/a/%EF%BC%8E%EF%BC%8E/b', '/a/%E2%80%A4%E2%80%A4/b', '/a/%20/b', '/a/..%20;x/b', '/a/%252525252e%252525252e/b']) {
      expect(checkRelativePath(p).ok, p).to.equal(false);
    }
    for (const p of ['/a/.well-known/b', '/a/v1.2/b', '/a/%E2%80%A4x/b', '/a/x%20./b', '/a/%25252e%25252e']) {
      if (p === '/a/%25252e%25252e') expect(checkRelativePath(p).ok, p).to.equal(false); // 4 decodings: "..", refused as before
      else expect(checkRelativePath(p).ok, p).to.equal(true);
    }
  });

  it('keeps ordinary API paths and queries as they are', () => {
    for (const p of ['/mdm/devices/search?page=0&pagesize=500', '/system/groups/570/children', '/v2/devices?query=common.status%3D%22ACTIVE%22', '/', '/mdm/', '/a%20b/c']) {
      const r = checkRelativePath(p);
      expect(r.ok, p).to.equal(true);
      if (r.ok) expect(r.path + r.query).to.equal(p);
    }
  });

  it('joins base and path without doubling or losing slashes', () => {
    expect(joinUnderBase('/API', '/mdm')).to.equal('/API/mdm');
    expect(joinUnderBase('/API/', '/mdm')).to.equal('/API/mdm');
    expect(joinUnderBase('', '/mdm')).to.equal('/mdm');
  });

  it('drops hop-by-hop, Host, Authorization, Cookie, Connection-named and injected headers', () => {
    const r = forwardableRequestHeaders(
      [
        ['Host', 'evil'],
        ['Authorization', 'Bearer relay-token'],
        ['Connection', 'keep-alive, X-Secret-Hop'],
        ['X-Secret-Hop', '1'],
        ['Transfer-Encoding', 'chunked'],
        ['Proxy-Authorization', 'Basic x'],
        ['aw-tenant-code', 'forged'],
        ['Cookie', 'a=b'],
        ['Accept', 'application/json'],
        ['Content-Length', '5'],
      ],
      new Set(['aw-tenant-code']),
    );
    expect(r).to.deep.equal({ ok: true, headers: [['accept', 'application/json'], ['content-length', '5']] });
  });

  it('refuses CR/LF/NUL in header values and conflicting Content-Length', () => {
    expect(forwardableRequestHeaders([['x', 'a\r\nHost: evil']]).ok).to.equal(false);
    expect(forwardableRequestHeaders([['x', 'a\u0000']]).ok).to.equal(false);
    expect(forwardableRequestHeaders([['content-length', '3'], ['content-length', '4']]).ok).to.equal(false);
    expect(forwardableRequestHeaders([['content-length', '3'], ['content-length', '3']])).to.deep.equal({ ok: true, headers: [['content-length', '3']] });
    expect(forwardableRequestHeaders([['content-length', '-1']]).ok).to.equal(false);
  });

  it('strips hop-by-hop response headers but keeps the rest, duplicates included', () => {
    expect(forwardableResponseHeaders([['Connection', 'close'], ['Keep-Alive', 't=5'], ['Set-Cookie', 'a'], ['Set-Cookie', 'b']])).to.deep.equal([
      ['Set-Cookie', 'a'],
      ['Set-Cookie', 'b'],
    ]);
    // Headers a Connection header names are hop-by-hop too, whatever their case or position.
    expect(forwardableResponseHeaders([['x-early', '1'], ['CONNECTION', 'X-Early, x-Late'], ['X-Late', '2'], ['x-kept', '3']])).to.deep.equal([['x-kept', '3']]);
  });

  it('allow rules match methods and whole path segments; no rules allow all', () => {
    const rules = [{ methods: ['GET'], pathPrefix: '/mdm' }, { methods: ['*'], pathPrefix: '/system/info' }, { methods: ['POST'], pathPrefix: '/tags/' }];
    expect(isAllowed([], 'DELETE', '/anything')).to.equal(true);
    expect(isAllowed(rules, 'GET', '/mdm')).to.equal(true);
    expect(isAllowed(rules, 'get', '/mdm/devices')).to.equal(true);
    expect(isAllowed(rules, 'GET', '/mdmx')).to.equal(false);
    expect(isAllowed(rules, 'POST', '/mdm/devices')).to.equal(false);
    expect(isAllowed(rules, 'PUT', '/system/info')).to.equal(true);
    expect(isAllowed(rules, 'POST', '/tags/1')).to.equal(true);
    expect(isAllowed(rules, 'POST', '/tags')).to.equal(false);
  });
});
