/** The cloud's key for secrets at rest (dataDir/secrets.key, 32 random bytes, 0600), made at first start. */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { UemlinkError } from '../common/errors.js';
import { writePrivateFile } from '../common/fs-secure.js';

export async function loadOrCreateSecretKey(dataDir: string): Promise<Buffer> {
  const file = join(dataDir, 'secrets.key');
  try {
    const b = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (b.length !== 32) throw new UemlinkError('STATE_CORRUPT', `${file} is not a 32-byte key; restore it from a backup (sealed secrets cannot be read without it)`);
    return b;
  } catch (e) {
    if (e instanceof UemlinkError) throw e;
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new UemlinkError('STATE_UNREADABLE', `cannot read ${file}: ${(e as Error).message}`);
  }
  const key = randomBytes(32);
  await writePrivateFile(file, `${key.toString('base64')}\n`, 'secrets key');
  return key;
}
