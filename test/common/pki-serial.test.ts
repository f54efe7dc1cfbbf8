/**
 * Certificate serials: random, positive, and encoded so that OpenSSL parses every certificate
 * (a serial starting 00 00 0x was refused with "illegal padding": 1 certificate in 65,536).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import forge from 'node-forge';
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { certificateSerial } from '../../src/common/pki.js';

describe('certificate serials (certificateSerial)', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const signer = forge.pki.privateKeyFromPem(privateKey);
  const pub = forge.pki.publicKeyFromPem(publicKey);

  /** A self-signed certificate with this serial, made by forge as issueCertificate makes them. */
  function parsedSerial(serialHex: string): string {
    const cert = forge.pki.createCertificate();
    cert.publicKey = pub;
    cert.serialNumber = serialHex;
    cert.validity.notBefore = new Date();
    cert.validity.notAfter = new Date(Date.now() + 86_400_000);
    cert.setSubject([{ name: 'commonName', value: 'serial test' }]);
    cert.setIssuer([{ name: 'commonName', value: 'serial test' }]);
    cert.sign(signer, forge.md.sha256.create());
    return new X509Certificate(forge.pki.certificateToPem(cert)).serialNumber.toLowerCase();
  }

  it('random bytes that start 00 00 1x or 80 00 1x still give a certificate OpenSSL parses (they did not)', () => {
    const zeros = Buffer.from('000012b2c3d4e5f60718293a4b5c6d7e', 'hex');
    expect(() => parsedSerial(zeros.toString('hex'))).to.throw(/illegal padding/); // the old rule's output for these bytes
    for (const prefix of ['000012', '800012', '000112', '7fff12', 'ffff12', '0000a1']) {
      const bytes = Buffer.from(`${prefix}b2c3d4e5f60718293a4b5c6d7e`, 'hex');
      const hex = certificateSerial(bytes);
      expect(BigInt(`0x${parsedSerial(hex)}`), prefix).to.equal(BigInt(`0x${hex}`));
    }
  });

  it('is 16 bytes, positive, without a leading zero byte, and keeps the other 15 bytes as drawn', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (raw) => {
        const bytes = Buffer.from(raw);
        const hex = certificateSerial(bytes);
        expect(hex).to.have.length(32);
        const first = parseInt(hex.slice(0, 2), 16);
        expect(first).to.be.within(0x01, 0x7f);
        expect(hex.slice(2)).to.equal(bytes.subarray(1).toString('hex'));
        expect(bytes[0]).to.equal(raw[0]); // the caller's buffer is left alone
      }),
    );
  });
});
