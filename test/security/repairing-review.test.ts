/**
 * Attacker's review of pairing again with `replaces` (commit 6bb03fa, src/cloud/pairing.ts retire()):
 * what a holder of an old key and of some pairing token of the tenant can write into the record of
 * a connector an administrator revoked. Failed on the code as reviewed.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import { connectorView, revokeConnector } from '../../src/cloud/admin-api.js';
import { ConnectorCA } from '../../src/cloud/ca.js';
import { connectorsBody } from '../../src/cloud/console/pages/connectors.js';
import { PairingService } from '../../src/cloud/pairing.js';
import { openCloudStore } from '../../src/cloud/state.js';
import { silentLogger } from '../../src/common/log.js';
import { parsePairingToken } from '../../src/common/pairing-token.js';
import { createCsr, generateRsaKeyPair } from '../../src/common/pki.js';
import { signReplacement } from '../../src/common/replacement.js';
import { tempDir } from '../helpers/procs.js';

describe('security review: pairing again over a connector an administrator revoked', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it("a stolen key of a connector revoked by hand cannot make the rogue connector it pairs that connector's recorded successor", async () => {
    const dir = tempDir('rv-sec-repair-');
    dirs.push(dir);
    const store = openCloudStore(dir);
    const { ca } = await ConnectorCA.loadOrCreate(dir);
    const svc = new PairingService(store, ca, 'https://relay.example.com', 365);
    const victimKeys = generateRsaKeyPair(2048);
    const victim = await svc.redeem({ token: (await svc.createToken({ tenant: 'acme', group: 'hq' })).token, csr: createCsr(victimKeys.privateKeyPem, { CN: 'gw-01' }), hostname: 'gw-01' });
    // The host was compromised: the admin revokes its connector (its key is in the attacker's hands).
    const registry = { disconnect: () => false } as never;
    await revokeConnector({ store, registry, logger: silentLogger(), clock: { now: () => Date.now() } as never }, victim.connectorId, 'console');
    // Later, the attacker gets hold of any pairing token of the tenant (one for another site will do)
    // and pairs a machine of its own, "replacing" the revoked connector with the stolen key.
    const token = (await svc.createToken({ tenant: 'acme', group: 'branch' })).token;
    const rogueCsr = createCsr(generateRsaKeyPair(2048).privateKeyPem, { CN: 'gw-01' });
    const rogue = await svc.redeem({
      token,
      csr: rogueCsr,
      hostname: 'gw-01',
      replaces: { connectorId: victim.connectorId, signature: signReplacement(victimKeys.privateKeyPem, victim.connectorId, parsePairingToken(token).id, rogueCsr) },
    });
    const s = await store.read();
    const page = connectorsBody({ connectors: Object.values(s.connectors).map((c) => connectorView(c, { registry: { get: () => undefined }, book: { peek: () => undefined } } as never)), tenants: ['acme'], filter: undefined, csrf: 'x', now: Date.now() }).toString();
    // The console now says the revoked connector was "paired again as" the attacker's connector, and
    // the API's replacedBy names it: the admin's revocation reads as a re-pairing, and the rogue
    // connector as its legitimate successor.
    expect(s.connectors[victim.connectorId]!.replacedBy, `replacedBy of the hand-revoked record names the rogue connector (answer: ${JSON.stringify(rogue.replaces)})`).to.equal(undefined);
    expect(page).to.not.contain(`paired again as <code>${rogue.connectorId}</code>`);
  });
});
