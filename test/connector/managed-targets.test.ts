import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cancel } from '../../src/common/cancel.js';
import { systemClock } from '../../src/common/clock.js';
import { silentLogger } from '../../src/common/log.js';
import { createTestPki } from '../../src/common/pki.js';
import { ManagedTargets } from '../../src/connector/managed-targets.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const pki = createTestPki(['localhost', '127.0.0.1']);

function managed(stateDir: string, allowedHosts: string[]): ManagedTargets {
  return new ManagedTargets({ stateDir, allowedHosts, localIds: new Set(['local1']), logger: silentLogger(), clock: systemClock, onChange: () => {} });
}

/** Cloud-managed targets stay inside cloudManagedTargets.allowedHosts and what a local admin approved (found in review). */
describe('cloud-managed targets: the local policy and approvals hold', () => {
  let allowed: Upstream;
  let internal: Upstream;
  before(async () => {
    allowed = await startUpstream({ pki });
    internal = await startUpstream({
      pki,
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: 'tok', expires_in: 3600 }));
      },
    });
  });
  after(async () => {
    await allowed.close();
    await internal.close();
  });

  it('an OAuth2 tokenUrl on a host outside allowedHosts is not contacted (the definition is not auto-accepted)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'review-mt-'));
    const m = managed(dir, ['localhost']); // 127.0.0.1 is NOT allowed
    await m.load();
    const d = await m.offer({
      id: 'pushed',
      baseUrl: `https://localhost:${allowed.port}`,
      auth: { type: 'oauth2', tokenUrl: `https://127.0.0.1:${internal.port}/secret/admin-action?x=1`, clientId: 'c', clientSecret: 's' },
      tls: { ca: pki.caCertPem },
    });
    const t = m.targets().find((x) => x.id === 'pushed');
    if (t) {
      const res = await t.send({ method: 'GET', path: '/x', headers: [], body: null, signal: new Cancel(), timeoutMs: 5000 });
      res.body.resume();
      t.close();
    }
    expect(d.state, 'pending: a local admin must approve the token host').to.equal('pending');
    expect(internal.seen, 'the disallowed host received a POST from the connector').to.have.length(0);
    const v = (await m.list()).find((x) => x.id === 'pushed')!;
    expect(v.contacts, 'what the approval page shows').to.deep.equal(['localhost', '127.0.0.1']);
    expect(d.reason).to.contain(`"127.0.0.1:${internal.port}"`);
  });

  it('an allowedHosts entry with a port allows that port only: another service of the same host waits for an admin', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'review-mt-'));
    const m = managed(dir, [`localhost:${allowed.port}`]);
    await m.load();
    const ok = await m.offer({ id: 'uem', baseUrl: `https://localhost:${allowed.port}/api`, auth: { type: 'none' }, tls: { ca: pki.caCertPem } });
    expect(ok.state).to.equal('accepted');
    const other = await m.offer({ id: 'other-port', baseUrl: `https://localhost:${internal.port}/admin`, auth: { type: 'none' }, tls: { ca: pki.caCertPem } });
    expect(other.state).to.equal('pending');
    expect(other.reason).to.contain(`"localhost:${internal.port}"`);
    expect(m.targets().map((t) => t.id)).to.deep.equal(['uem']);
    for (const t of m.targets()) t.close();
  });

  it('removing a host from allowedHosts stops a target that was auto-accepted for it (after restart)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'review-mt-'));
    const def = { id: 'auto', baseUrl: `https://localhost:${allowed.port}`, auth: { type: 'none' }, tls: { ca: pki.caCertPem } };
    const a = managed(dir, ['localhost']);
    await a.load();
    expect((await a.offer(def)).state).to.equal('accepted');
    for (const t of a.targets()) t.close();
    // The admin narrows the policy and restarts the connector; the cloud re-offers the same definition.
    const b = managed(dir, []);
    await b.load();
    const again = await b.offer(def);
    const active = b.targets().map((t) => t.id);
    for (const t of b.targets()) t.close();
    expect(again.state).to.equal('pending');
    expect((await b.list()).find((x) => x.id === 'auto')?.state, 'pending from the restart on').to.equal('pending');
    expect(active, 'still routable although its host is no longer allowed and no admin approved it').to.not.include('auto');
  });

  it('a cloud-chosen credential header named "Host" cannot redirect the request to another virtual host', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'review-mt-'));
    const m = managed(dir, ['localhost']);
    await m.load();
    const d = await m.offer({ id: 'hosty', baseUrl: `https://localhost:${allowed.port}`, auth: { type: 'apiKey', header: 'Host', value: 'admin.internal' }, tls: { ca: pki.caCertPem } });
    const t = m.targets().find((x) => x.id === 'hosty');
    let seenHost: string | undefined;
    let err: unknown;
    if (t) {
      const before = allowed.seen.length;
      try {
        const res = await t.send({ method: 'GET', path: '/x', headers: [], body: null, signal: new Cancel(), timeoutMs: 5000 });
        res.body.resume();
      } catch (e) {
        err = e;
      }
      seenHost = allowed.seen[before]?.headers.host;
      t.close();
    }
    expect(d.state).to.equal('accepted');
    expect(seenHost).to.not.equal('admin.internal');
    void err;
  });

  it('a local approval applies to the definition the admin saw, not to one the cloud swapped in meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'review-mt-'));
    const m = managed(dir, []);
    await m.load();
    await m.offer({ id: 'swap', baseUrl: 'https://uem.corp.local/API', auth: { type: 'none' } });
    await new Promise((r) => setTimeout(r, 5)); // another offer, another time
    const shown = (await m.list()).find((v) => v.id === 'swap')!; // what the local page shows
    // Between page render and the admin's click, the cloud re-offers a different definition (same id).
    await m.offer({ id: 'swap', baseUrl: `https://127.0.0.1:${internal.port}/`, auth: { type: 'none' }, tls: { ca: pki.caCertPem } });
    // The approve form carries the offer it showed: a newer one is refused, nothing becomes routable.
    const err = await m.decide('swap', 'accepted', undefined, shown.offeredAt).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(err?.code).to.equal('CONFLICT');
    expect(m.targets().find((x) => x.id === 'swap')).to.equal(undefined);
    const now = (await m.list()).find((v) => v.id === 'swap')!;
    await m.decide('swap', 'accepted', undefined, now.offeredAt); // the admin reviews it again
    const t = m.targets().find((x) => x.id === 'swap');
    for (const x of m.targets()) x.close();
    expect(t?.baseUrl.href).to.equal(`https://127.0.0.1:${internal.port}/`);
  });
});
