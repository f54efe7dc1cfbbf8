/**
 * Failure limits (found in review): an IPv6 client counts by its /64, as in the handshake gate, and
 * attempts sent all at once are judged against each other, not against the count from before any
 * of them failed.
 */
import { expect } from 'chai';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { requireAdmin } from '../../src/cloud/admin-auth.js';
import type { CloudServer } from '../../src/cloud/server.js';
import { FailureLimiter, sourceOf } from '../../src/common/rate-limit.js';
import { startInprocCloud } from '../helpers/inproc.js';

/** requireAdmin's answer to one request from `ip` (a minimal request and response: the middleware reads only these). */
function adminAnswer(mw: ReturnType<typeof requireAdmin>, ip: string, token: string): number {
  let status = 0;
  const res = {
    headersSent: false,
    setHeader: () => res,
    status(s: number) {
      status = s;
      return res;
    },
    json: () => res,
  };
  const req = { socket: { remoteAddress: ip }, headers: { authorization: `Bearer ${token}` } };
  mw(req as unknown as IncomingMessage as never, res as unknown as ServerResponse as never, () => (status = 200));
  return status;
}

describe('failure limits', function () {
  this.timeout(60_000);

  it('wrong admin tokens from addresses of one IPv6 /64 share one budget', () => {
    expect(sourceOf('2001:db8:1:2::a:1')).to.equal(sourceOf('2001:db8:1:2:ffff::9'));
    const mw = requireAdmin('the-real-admin-token-0123456789', new FailureLimiter(20, 60_000));
    let limited = 0;
    for (let i = 0; i < 200; i++) if (adminAnswer(mw, `2001:db8:1:2::${(i + 1).toString(16)}`, `guess-${i}-xxxxxxxxxxxxxxxx`) === 429) limited++;
    expect(limited, 'one /64 is one source: 20 guesses, then 429').to.equal(180);
    expect(adminAnswer(mw, '2001:db8:1:3::1', 'the-real-admin-token-0123456789'), 'another /64 is not locked out').to.equal(200);
  });

  describe('pairing', () => {
    let cloud: CloudServer;
    before(async () => {
      cloud = await startInprocCloud(); // per address 100 a minute, per tenant 30
    });
    after(() => cloud.shutdown());

    it("90 wrong secrets for a live token sent at once: no more than the tenant's 30 are judged", async () => {
      const t = await cloud.pairing.createToken({ tenant: 'victim' });
      const parts = t.token.split('.');
      const send = async (i: number): Promise<number> => {
        const wrong = `${parts.slice(0, 3).join('.')}.${Buffer.alloc(32, i + 1).toString('base64url')}`;
        const r = await fetch(`http://127.0.0.1:${cloud.port}/api/v1/pair`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: wrong, csr: 'x' }) });
        await r.text();
        return r.status;
      };
      const statuses = await Promise.all(Array.from({ length: 90 }, (_, i) => send(i)));
      expect(statuses.filter((s) => s !== 429).length).to.equal(30);
      expect(statuses.filter((s) => s === 429).length).to.equal(60);
    });
  });
});
