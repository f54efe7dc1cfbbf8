import { expect } from 'chai';
import { parseControl } from '../../src/protocol/control.js';

describe('CONTROL messages as the spec reads them (§9)', () => {
  it('a known message comes out typed, with unknown extra members dropped', () => {
    expect(parseControl({ type: 'target.sync', ids: ['a', 'b'], extra: 1 })).to.deep.equal({ type: 'target.sync', ids: ['a', 'b'] });
    expect(parseControl({ type: 'cert.renewed', certificate: 'C', caCertificate: 'A' })).to.deep.equal({ type: 'cert.renewed', certificate: 'C', caCertificate: 'A' });
  });

  it('an unknown type (a newer peer) and a known type with missing or mistyped fields are ignored', () => {
    expect(parseControl({ type: 'something.new', x: 1 })).to.equal(undefined);
    expect(parseControl({ targets: [] })).to.equal(undefined);
    expect(parseControl({ type: 'target.withdraw' })).to.equal(undefined);
    expect(parseControl({ type: 'target.sync', ids: ['a', 7] })).to.equal(undefined);
    expect(parseControl({ type: 'target.status', id: 'x', state: 'maybe' })).to.equal(undefined);
    expect(parseControl({ type: 'cert.renewed', certificate: 'C' })).to.equal(undefined);
    expect(parseControl({ type: 'targets', targets: ['ok', 'x'.repeat(65)] }), 'an id longer than 64: the whole list is ignored').to.equal(undefined);
  });

  it('target.offer and cert.renew pass whatever payload they carry: their handlers answer a bad one (refused, cert.renew-failed)', () => {
    expect(parseControl({ type: 'target.offer', target: 'not an object' })).to.deep.equal({ type: 'target.offer', target: 'not an object' });
    expect(parseControl({ type: 'cert.renew', csr: 42 })).to.deep.equal({ type: 'cert.renew', csr: 42 });
  });

  it('a mistyped optional word is dropped, not the message', () => {
    const status = parseControl({ type: 'target.status', id: 'x', state: 'refused', reason: 5 });
    expect(status).to.include({ type: 'target.status', id: 'x', state: 'refused' });
    expect(status && 'reason' in status ? status.reason : undefined).to.equal(undefined);
    const asked = parseControl({ type: 'cert.renew-requested', reason: {} });
    expect(asked?.type).to.equal('cert.renew-requested');
    expect(asked && 'reason' in asked ? asked.reason : undefined).to.equal(undefined);
    expect(parseControl({ type: 'cert.renew-failed' })?.type).to.equal('cert.renew-failed');
  });
});

describe('CONTROL messages through a session', () => {
  it('the receiving session hands over what the spec defines, typed, and drops the rest without ending the tunnel', async () => {
    const { sessionPair } = await import('../helpers/sessions.js');
    const p = sessionPair();
    const got: unknown[] = [];
    p.cloud.on('control', (m) => got.push(m));
    const send = (m: Record<string, unknown>): void => p.connector.sendControl(m as never);
    send({ type: 'something.new', x: 1 });
    send({ type: 'target.status', id: 'x', state: 'maybe' });
    send({ type: 'targets', targets: ['a', 'b'] });
    await new Promise((r) => setTimeout(r, 20));
    expect(got).to.deep.equal([{ type: 'targets', targets: ['a', 'b'] }]);
    expect(p.cloud.state).to.equal('open');
    p.cloud.close();
  });
});
