/**
 * Authenticated encryption for secrets at rest (AES-256-GCM). A sealed value is self-describing
 * ({v, iv, tag, data}); opening with the wrong key or a tampered value fails loudly.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { UemlinkError } from './errors.js';
import { writePrivateFile } from './fs-secure.js';

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
  // The tag's length is pinned: GCM accepts tags cut down to 4 bytes, which a forger needs to
  // match far less often than a whole one.
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(s.iv, 'base64'), { authTagLength: 16 });
  d.setAAD(Buffer.from(aad));
  d.setAuthTag(Buffer.from(s.tag, 'base64'));
  return Buffer.concat([d.update(Buffer.from(s.data, 'base64')), d.final()]).toString('utf8');
}

/**
 * A 32-byte key kept in its own 0600 file (base64), made on first use. Data sealed with it is useless
 * to whoever copies a state file without the key file.
 */
export async function loadOrCreateKeyFile(file: string, what: string): Promise<Buffer> {
  try {
    const b = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (b.length !== 32) throw new UemlinkError('STATE_CORRUPT', `${file} is not a 32-byte key; restore it from a backup (what it sealed cannot be read without it)`);
    return b;
  } catch (e) {
    if (e instanceof UemlinkError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UemlinkError('STATE_UNREADABLE', `cannot read ${file}: ${(e as Error).message}`);
  }
  const key = randomBytes(32);
  await writePrivateFile(file, `${key.toString('base64')}\n`, what);
  return key;
}
