import { expect } from 'chai';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { auditLine, auditPath, createAuditLog, isoNow } from '../../src/common/audit.js';
import { REDACTED, secrets } from '../../src/common/redact.js';
import { tempDir } from '../helpers/procs.js';

const entry = (i: number) => ({ tenant: 'acme', target: 'ws1', method: 'GET', path: `/API/mdm/devices/${i}?token=SECRET-${i}`, status: 200, bytesIn: 0, bytesOut: 10, durationMs: 1, connectorId: 'cn_x' });

describe('connector audit log', () => {
  it('builds the line JSON.stringify writes (with U+2028/2029 escaped too), for any strings and numbers (escapes, unicode, non-finite)', () => {
    const num = fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, 1e21, 1.5e-7, Number.MAX_VALUE));
    const str = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.constantFrom('"', '\\', '\u2028', 'a\u2029b', '\u0085', '\ud800', '\n\t\u0000'));
    fc.assert(
      fc.property(str, str, str, str, num, num, num, num, str, fc.option(str, { nil: undefined }), str, (tenant, target, method, rest, status, bytesIn, bytesOut, durationMs, connectorId, error, time) => {
        const e = { tenant, target, method, path: `/${rest}`, status, bytesIn, bytesOut, durationMs, connectorId, ...(error !== undefined ? { error } : {}) };
        const expected = `${JSON.stringify({ level: 'info', message: 'relay', ...e, path: auditPath(e.path), time }).replace(/\u0085/g, '\\u0085').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029')}\n`;
        const line = auditLine(e, time);
        expect(line).to.equal(expected);
        // One line for any line splitter: no raw separator JavaScript or Unicode counts as a break.
        expect(line.slice(0, -1)).to.not.match(/[\n\r\u2028\u2029\u0085]/);
      }),
      { numRuns: 500 },
    );
  });

  it('isoNow() is what toISOString() gives, across second, day and year boundaries and in any order', () => {
    const t = fc.oneof(fc.integer({ min: 0, max: 4102444800000 }), fc.constantFrom(0, 999, 1000, 1704067199999, 1704067200000, 951782400000));
    fc.assert(
      fc.property(fc.array(t, { minLength: 1, maxLength: 20 }), (times) => {
        for (const ms of times) expect(isoNow(ms)).to.equal(new Date(ms).toISOString());
      }),
    );
  });

  it('writes one JSON line per call, 0600, without query values', async () => {
    const dir = tempDir('uemlink-audit-');
    const file = join(dir, 'audit', 'audit.log');
    const log = createAuditLog({ file, maxBytes: 1 << 20, maxFiles: 3 });
    for (let i = 0; i < 3; i++) log.record(entry(i));
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).to.have.length(3);
    expect(lines[1]).to.include({ level: 'info', message: 'relay', tenant: 'acme', status: 200, path: '/API/mdm/devices/1?token=…' });
    expect(lines[1]!.time).to.match(/^\d{4}-\d\d-\d\dT/);
    expect(readFileSync(file, 'utf8')).to.not.contain('SECRET');
    expect(statSync(file).mode & 0o777).to.equal(0o600);
  });

  it('says once that it cannot write (the daemon logs it), and again after a recovery and a new failure', async () => {
    const dir = tempDir('uemlink-audit-');
    // A directory where the file should be: every open fails (EISDIR), as on a read-only path.
    const file = join(dir, 'audit.log');
    mkdirSync(file);
    const errors: string[] = [];
    const log = createAuditLog({ file, maxBytes: 1 << 20, maxFiles: 3, onError: (e) => errors.push((e as NodeJS.ErrnoException).code ?? e.message) });
    for (let i = 0; i < 5; i++) log.record(entry(i));
    await log.close();
    for (let i = 0; i < 5; i++) log.record(entry(i));
    await log.close();
    expect(errors).to.deep.equal(['EISDIR']);
  });

  it('redacts a secret in a path even when that path was seen before the secret was registered', () => {
    const secret = 'sk-live-0f9e8d7c6b5a';
    const path = `/API/keys/${secret}/devices`;
    // (the secret stays registered: other tests' output never contains it)
    expect(auditPath(path)).to.equal(path); // not a secret yet (and now remembered)
    expect(auditPath(`${path}?page=2&token=abc`)).to.equal(`${path}?page=…&token=…`);
    secrets.add(secret);
    expect(auditPath(path)).to.equal(`/API/keys/${REDACTED}/devices`);
    expect(auditPath(`${path}?page=2`)).to.equal(`/API/keys/${REDACTED}/devices?page=…`);
    expect(auditPath('/x/Bearer abcdefgh')).to.equal(`/x/Bearer ${REDACTED}`); // patterns as before
  });

  it('writes a line within moments on its own (gathered, not held until close), and keeps appending after a restart', async () => {
    const dir = tempDir('uemlink-audit-');
    const file = join(dir, 'audit.log');
    const log = createAuditLog({ file, maxBytes: 1 << 20, maxFiles: 3 });
    log.record(entry(1));
    expect(readFileSync(file, 'utf8'), 'nothing written synchronously').to.equal('');
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(file, 'utf8').trim().split('\n')).to.have.length(1);
    await log.close();
    const again = createAuditLog({ file, maxBytes: 1 << 20, maxFiles: 3 });
    again.record(entry(2));
    await again.close();
    expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { path: string }).path)).to.deep.equal(['/API/mdm/devices/1?token=…', '/API/mdm/devices/2?token=…']);
  });

  it('rotates by size, keeping maxFiles files in all, newest first, and never a line split in two', async () => {
    const dir = tempDir('uemlink-audit-');
    const file = join(dir, 'audit.log');
    const log = createAuditLog({ file, maxBytes: 2000, maxFiles: 3 });
    for (let i = 0; i < 100; i++) log.record(entry(i));
    await log.close();
    await new Promise((r) => setTimeout(r, 50)); // streams ended by rotation flush on their own
    expect(readdirSync(dir).sort()).to.deep.equal(['audit.log', 'audit.log.1', 'audit.log.2']);
    const read = (f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { path: string }).path);
    for (const f of ['audit.log', 'audit.log.1', 'audit.log.2']) expect(statSync(join(dir, f)).size, f).to.be.at.most(2000);
    // The newest calls are in audit.log, the ones before in .1, and so on, in order.
    const all = [...read('audit.log.2'), ...read('audit.log.1'), ...read('audit.log')];
    const ids = all.map((p) => Number(/devices\/(\d+)/.exec(p)![1]));
    expect(ids[ids.length - 1]).to.equal(99);
    for (let i = 1; i < ids.length; i++) expect(ids[i]).to.equal(ids[i - 1]! + 1);
  });

  it('keeps only what looks like a parameter name from a query: bare items and token-like names go, registered secrets are scrubbed', () => {
    try {
      secrets.add('S3cr3t-UEM-password');
      expect(auditPath('/api/x?S3cr3t-UEM-password')).to.equal('/api/x?…');
      expect(auditPath('/api/x?S3cr3t-UEM-password=1&page=2')).to.equal(`/api/x?${REDACTED}=…&page=…`);
      expect(auditPath('/api/x?eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl')).to.equal('/api/x?…');
      expect(auditPath('/api/x?eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl=1')).to.equal('/api/x?…=…');
      expect(auditPath('/api/x?a%20b=1&search[name]=x&&flag')).to.equal('/api/x?…=…&search[name]=…&…');
    } finally {
      secrets.clear();
    }
  });
});
