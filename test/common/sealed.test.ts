import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { open, seal } from '../../src/common/sealed.js';

describe('sealed secrets (AES-256-GCM)', () => {
  const key = randomBytes(32);

  it('opens what it sealed, under the same additional data only', () => {
    const s = seal(key, 'client-secret-value', 'integration:int_1');
    expect(open(key, s, 'integration:int_1')).to.equal('client-secret-value');
    expect(() => open(key, s, 'integration:int_2')).to.throw();
    expect(() => open(randomBytes(32), s, 'integration:int_1')).to.throw();
  });

  it('refuses a tag cut short (found in review: GCM accepts 4-byte tags unless the length is pinned)', () => {
    const s = seal(key, 'client-secret-value');
    const short = { ...s, tag: Buffer.from(s.tag, 'base64').subarray(0, 4).toString('base64') };
    expect(() => open(key, short)).to.throw(/authentication tag length/);
  });
});
