/**
 * Target id lists travel in one JSON frame each (HELLO, `targets`, `target.sync`; never split):
 * the cloud reads a HELLO listing every target a connector may have, and what makes the lists
 * longer than a frame carries is refused where it is configured (found in the protocol review).
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CloudServer } from '../../src/cloud/server.js';
import { loadConnectorConfig } from '../../src/connector/config.js';
import { MAX_TARGETS_PER_CONNECTOR } from '../../src/protocol/messages.js';
import { connectAs, pairInproc, startInprocCloud } from '../helpers/inproc.js';
import { tempDir, until } from '../helpers/procs.js';

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `t${String(i).padStart(4, '0')}-${'x'.repeat(58)}`);

describe('target id lists and the frame limit', function () {
  this.timeout(30_000);
  let cloud: CloudServer;
  before(async () => {
    cloud = await startInprocCloud();
  });
  after(async () => {
    await cloud.shutdown();
  });

  it('a HELLO listing 1000 targets of 64 characters (§4.1) is accepted: the handshake is read beyond the 64 KiB frame limit', async () => {
    expect(ids(1)[0]).to.have.length(64);
    const id = await pairInproc(cloud);
    const c = await connectAs(cloud, id, { targets: ids(1000) });
    try {
      await until(() => cloud.registry.get(id.connectorId) !== undefined, 5000, 'connected');
    } finally {
      c.session.close();
    }
  });

  it(`a connector config with more than ${MAX_TARGETS_PER_CONNECTOR} targets is refused, naming the limit`, () => {
    const dir = tempDir('uemlink-targets-');
    const f = join(dir, 'connector.json');
    const target = (i: number) => ({ id: `t${i}`, baseUrl: 'https://uem.corp.local', auth: { type: 'none' } });
    writeFileSync(f, JSON.stringify({ stateDir: './s', targets: Array.from({ length: MAX_TARGETS_PER_CONNECTOR + 1 }, (_, i) => target(i)) }));
    expect(() => loadConnectorConfig(f)).to.throw(`targets: at most ${MAX_TARGETS_PER_CONNECTOR} targets (their ids travel in one tunnel frame)`);
    writeFileSync(f, JSON.stringify({ stateDir: './s', targets: Array.from({ length: MAX_TARGETS_PER_CONNECTOR }, (_, i) => target(i)) }));
    expect(loadConnectorConfig(f).targets).to.have.length(MAX_TARGETS_PER_CONNECTOR);
  });

  it(`a group takes at most ${MAX_TARGETS_PER_CONNECTOR} cloud-managed targets; replacing one of them is still allowed; another group is not counted`, async () => {
    const def = { baseUrl: 'https://uem.corp.local', auth: { type: 'none' }, group: 'full' };
    for (let i = 0; i < MAX_TARGETS_PER_CONNECTOR; i++) await cloud.managedTargets.put('acme', `m${i}`, def);
    const err = await cloud.managedTargets.put('acme', 'one-more', def).then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).to.equal('INVALID_INPUT');
    expect(err?.message).to.equal(`group: full of tenant acme has ${MAX_TARGETS_PER_CONNECTOR} cloud-managed targets, the most a connector serves (remove one, or use another group)`);
    await cloud.managedTargets.put('acme', 'm0', { ...def, baseUrl: 'https://uem2.corp.local' });
    await cloud.managedTargets.put('acme', 'one-more', { ...def, group: 'other' });
    const s = await cloud.store.read();
    expect(s.managedTargets.filter((t) => t.group === 'full')).to.have.length(MAX_TARGETS_PER_CONNECTOR);
  });
});
