/**
 * The connector's identity on disk: stateDir (0700) holds state.json (connector id, tenant, group,
 * cloud URL, certificates, pairing time) and the private key in its own 0600 file.
 */
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { UemlinkError, fileProblem } from '../common/errors.js';
import { ensurePrivateDir, writePrivateFile } from '../common/fs-secure.js';
import { JsonStore } from '../common/json-store.js';
import { CONNECTOR_ID_RE } from '../common/names.js';

export const IdentitySchema = z.object({
  connectorId: z.string().regex(CONNECTOR_ID_RE),
  tenant: z.string(),
  group: z.string(),
  cloudUrl: z.string(),
  certificate: z.string(),
  caCertificate: z.string(),
  pairedAt: z.string(),
  /** File name (in stateDir) of the private key that belongs to `certificate`. */
  keyFile: z.string().regex(/^[A-Za-z0-9._-]+$/),
});
export type StoredIdentity = z.infer<typeof IdentitySchema>;

export const ConnectorState = z.object({
  version: z.literal(1),
  identity: IdentitySchema.optional(),
});
export type ConnectorState = z.infer<typeof ConnectorState>;

export interface Identity extends StoredIdentity {
  privateKeyPem: string;
}

export class ConnectorStateStore {
  readonly store: JsonStore<ConnectorState>;
  constructor(readonly stateDir: string) {
    this.store = new JsonStore<ConnectorState>({
      file: join(stateDir, 'state.json'),
      schema: ConnectorState,
      what: 'connector state',
      empty: () => ({ version: 1 }),
    });
  }

  /** The stored identity with its key, or undefined when not paired. */
  async identity(): Promise<Identity | undefined> {
    const s = await this.store.read();
    if (!s.identity) return undefined;
    const keyPath = join(this.stateDir, s.identity.keyFile);
    let privateKeyPem: string;
    try {
      privateKeyPem = await readFile(keyPath, 'utf8');
    } catch (e) {
      throw new UemlinkError('STATE_UNREADABLE', `connector key ${keyPath} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); pair the connector again`, { cause: e });
    }
    return { ...s.identity, privateKeyPem };
  }

  /**
   * Fails unless the state directory can be written, as `save` will need. Pairing checks it before
   * redeeming its single-use token: one spent on a pairing that could not be stored was lost.
   */
  async assertWritable(): Promise<void> {
    const probe = join(this.stateDir, '.write-probe');
    try {
      await ensurePrivateDir(this.stateDir);
      // As large as what pairing stores (a key and state.json, ~6 KiB) with room to spare: an
      // empty probe fitted on a full disk where the key then did not.
      await writePrivateFile(probe, Buffer.alloc(16 * 1024), 'state directory probe');
      await unlink(probe);
    } catch (e) {
      const cause = (e as { cause?: unknown }).cause ?? e;
      const why = `${fileProblem(cause)}${(cause as NodeJS.ErrnoException).code === 'EACCES' ? " (run pair as the service user, or fix the directory's owner)" : ''}`;
      throw new UemlinkError('STATE_WRITE_FAILED', `cannot write the state directory ${this.stateDir}: ${why}; nothing was changed, and the pairing token was not used`, { cause: e });
    }
  }

  /**
   * Stores a new identity. The key gets a file of its own first, then state.json points at it, then
   * the old key goes: at every instant state.json names a key that exists.
   *
   * `renewal.of` is the identity being renewed, as the renewing process loaded it: should state.json
   * name another one by now (`connector pair --force` while the daemon ran), the renewal is dropped
   * (STATE_CHANGED) instead of bringing the old connector back and deleting the new one's key.
   */
  async save(identity: Omit<StoredIdentity, 'keyFile'>, privateKeyPem: string, opts: { renewal?: { of: { connectorId: string; keyFile: string } } } = {}): Promise<void> {
    // The id names the key file: never a path (the pairing checks it too; this is the last line).
    if (!CONNECTOR_ID_RE.test(identity.connectorId)) throw new UemlinkError('STATE_INVALID', `not a connector id: ${JSON.stringify(identity.connectorId.slice(0, 40))}`);
    await ensurePrivateDir(this.stateDir);
    // A renewed key gets a new file: until state.json names it, the old key (still accepted by the
    // cloud with the previous certificate) stays in place.
    const keyFile = opts.renewal ? `${identity.connectorId}.${Date.now()}.key` : `${identity.connectorId}.key`;
    await writePrivateFile(join(this.stateDir, keyFile), privateKeyPem, 'connector key');
    let oldKey: string | undefined;
    try {
      await this.store.update((s) => {
        const of = opts.renewal?.of;
        if (of && (s.identity?.connectorId !== of.connectorId || s.identity.keyFile !== of.keyFile)) {
          throw new UemlinkError('STATE_CHANGED', `the connector was paired again (now ${s.identity?.connectorId ?? 'unpaired'}) while ${of.connectorId} renewed its certificate: the renewal is dropped; the running connector takes up the new pairing within seconds`);
        }
        oldKey = s.identity?.keyFile;
        s.identity = { ...identity, keyFile };
      });
    } catch (e) {
      if (opts.renewal) await unlink(join(this.stateDir, keyFile)).catch(() => {});
      throw e;
    }
    if (oldKey && oldKey !== keyFile) await unlink(join(this.stateDir, oldKey)).catch(() => {});
  }
}
