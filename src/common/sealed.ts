/**
 * Authenticated encryption for secrets at rest (AES-256-GCM). A sealed value is self-describing
 * ({v, iv, tag, data}); opening with the wrong key or a tampered value fails loudly.
 */
import { createCipheriv, createDecipheriv, createPrivateKey, hkdfSync, randomBytes } from 'node:crypto';

export interface Sealed {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

export function seal(key: Buffer, plaintext: string, aad = ''): Sealed {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(Buffer.from(aad));
  const data = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return { v: 1, iv: iv.toString('base64'), tag: c.getAuthTag().toString('base64'), data: data.toString('base64') };
}

export function open(key: Buffer, s: Sealed, aad = ''): string {
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(s.iv, 'base64'));
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(Buffer.from(s.tag, 'base64'));
  return Buffer.concat([d.update(Buffer.from(s.data, 'base64')), d.final()]).toString('utf8');
}

/**
 * A key derived from a private key: data sealed with it is useless to whoever copies the state file
 * without the key file, and no extra key file has to be kept.
 */
export function keyFromPrivateKey(privateKeyPem: string, purpose: string): Buffer {
  const der = createPrivateKey(privateKeyPem).export({ type: 'pkcs8', format: 'der' });
  return Buffer.from(hkdfSync('sha256', der, Buffer.from('uemlink'), Buffer.from(purpose), 32));
}
