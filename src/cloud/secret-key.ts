/** The cloud's key for secrets at rest (dataDir/secrets.key, 32 random bytes, 0600), made at first start. */
import { join } from 'node:path';
import { loadOrCreateKeyFile } from '../common/sealed.js';

export function loadOrCreateSecretKey(dataDir: string): Promise<Buffer> {
  return loadOrCreateKeyFile(join(dataDir, 'secrets.key'), 'secrets key');
}
