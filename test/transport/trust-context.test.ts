/**
 * The tunnel's TLS trust for extra CAs (cloud.caFile, a re-signing proxy's CA): one context per set
 * of CAs, reused by every redial, that trusts exactly the system roots plus that set.
 */
import { expect } from 'chai';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { createTestPki } from '../../src/common/pki.js';
import { trustContext } from '../../src/common/tls-trust.js';

describe('tunnel TLS trust (trustContext)', function () {
  this.timeout(20_000);
  const server = createTestPki(['127.0.0.1']);
  const other = createTestPki(['127.0.0.1']);

  it('is built once per set of CAs, whatever array holds them', () => {
    const a = trustContext([server.caCertPem]);
    expect(trustContext([server.caCertPem])).to.equal(a);
    expect(trustContext([other.caCertPem])).to.not.equal(a);
    expect(trustContext([server.caCertPem, other.caCertPem])).to.not.equal(a);
  });

  it('trusts a server signed by the set and refuses one that is not', async () => {
    const srv = createServer({ key: server.keyPem, cert: server.certPem }, (s) => s.end());
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    const port = (srv.address() as AddressInfo).port;
    const dial = (ca: string): Promise<{ ok: boolean; error?: string }> =>
      new Promise((resolve) => {
        const s: TLSSocket = connect({ host: '127.0.0.1', port, servername: undefined, secureContext: trustContext([ca]) });
        s.once('secureConnect', () => {
          resolve({ ok: s.authorized });
          s.destroy();
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve({ ok: false, error: e.code ?? e.message }));
      });
    try {
      expect(await dial(server.caCertPem)).to.deep.equal({ ok: true });
      const refused = await dial(other.caCertPem);
      expect(refused.ok).to.equal(false);
      expect(refused.error).to.match(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to verify/i);
    } finally {
      srv.close();
    }
  });
});
