/** The cloud's persistent state (dataDir/cloud-state.json), validated on every read. */
import { join } from 'node:path';
import { z } from 'zod';
import { JsonStore } from '../common/json-store.js';

import { CONNECTOR_ID_RE, GROUP_RE, TENANT_RE } from '../common/names.js';

export { CONNECTOR_ID_RE, GROUP_RE, TENANT_RE };

const iso = z.string();

export const PairingTokenRecord = z.object({
  id: z.string(),
  /** SHA-256 of the secret part; the secret itself is never stored. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  tenant: z.string(),
  group: z.string(),
  createdAt: iso,
  expiresAt: iso,
  usedAt: iso.optional(),
  usedBy: z.string().optional(),
});
export type PairingTokenRecord = z.infer<typeof PairingTokenRecord>;

export const ConnectorRecord = z.object({
  id: z.string().regex(CONNECTOR_ID_RE),
  tenant: z.string(),
  group: z.string(),
  hostname: z.string(),
  version: z.string(),
  pairedAt: iso,
  certificate: z.string(),
  fingerprint256: z.string(),
  notAfter: iso,
  lastSeen: iso.optional(),
  targets: z.array(z.string()).default([]),
  revokedAt: iso.optional(),
  /** The certificate before the last renewal: still accepted until the connector uses the new one. */
  previousCertificate: z.string().optional(),
  previousFingerprint256: z.string().optional(),
  renewedAt: iso.optional(),
  /** The connector that re-pairing put in this one's place (this one is revoked then). */
  replacedBy: z.string().regex(CONNECTOR_ID_RE).optional(),
  /** The connector's last answers about cloud-managed targets. */
  managedTargets: z.array(z.object({ id: z.string(), state: z.enum(['accepted', 'pending', 'refused']), reason: z.string().optional(), at: iso })).default([]),
});
export type ConnectorRecord = z.infer<typeof ConnectorRecord>;

const SealedSchema = z.object({ v: z.literal(1), iv: z.string(), tag: z.string(), data: z.string() });

export const ApiKeyRecord = z.object({
  id: z.string(),
  tenant: z.string(),
  /** SHA-256 of the secret part. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  label: z.string().optional(),
  createdAt: iso,
  revokedAt: iso.optional(),
});
export type ApiKeyRecord = z.infer<typeof ApiKeyRecord>;

/** A target definition the cloud pushes to a tenant's connectors of one group (secrets sealed). */
export const ManagedTargetRecord = z.object({
  tenant: z.string(),
  group: z.string(),
  id: z.string(),
  baseUrl: z.string(),
  sealed: SealedSchema,
  updatedAt: iso,
});
export type ManagedTargetRecord = z.infer<typeof ManagedTargetRecord>;

const Indicator = z.enum(['green', 'red', 'gray']);
const ComponentStatusSchema = z.object({
  indicator: Indicator,
  message: z.string(),
  lastRun: z.string().nullable(),
  lastSuccess: z.string().nullable(),
  counts: z.record(z.string(), z.number()),
});

/** A UEM integration (docs/integrations.md). Credentials are sealed; `auth` keeps only what is not secret. */
export const IntegrationRecord = z.object({
  id: z.string(),
  tenant: z.string(),
  vendor: z.enum(['workspace-one', 'ivanti-epmm', 'hexnode']),
  displayName: z.string(),
  serverAddress: z.string().optional(),
  route: z.union([
    z.object({ via: z.literal('direct') }),
    z.object({ via: z.literal('connector'), group: z.string(), target: z.string() }),
    z.object({ via: z.literal('connector'), group: z.string(), push: z.literal(true) }),
  ]),
  auth: z.object({ type: z.enum(['basic', 'oauth2']), username: z.string().optional(), clientId: z.string().optional(), tokenUrl: z.string().optional() }).optional(),
  authSealed: SealedSchema.optional(),
  selfSignedCertPem: z.string().optional(),
  sync: z.object({
    groups: z.array(z.string()),
    pii: z.object({ deviceName: z.boolean(), deviceNumber: z.boolean(), email: z.boolean() }),
    deviceSyncIntervalMinutes: z.number(),
    appSyncIntervalMinutes: z.number(),
    deviceDeletionThresholdPercent: z.number(),
    deviceDeletionAfterSyncs: z.number(),
  }),
  tagging: z.object({ deviceStatus: z.boolean(), deviceRisk: z.boolean(), threatFactors: z.boolean(), prefix: z.string() }),
  paused: z.boolean(),
  /** The UEM's groups as last listed (names and parents, for the conflict rule and the console). */
  groupsCache: z.array(z.object({ id: z.string(), name: z.string(), kind: z.string(), parentId: z.string().nullable() })).default([]),
  status: z.object({ uemServer: ComponentStatusSchema, deviceSync: ComponentStatusSchema, appSync: ComponentStatusSchema, tagging: ComponentStatusSchema, policyGroups: ComponentStatusSchema }),
  createdAt: iso,
  updatedAt: iso,
});
export type IntegrationRecord = z.infer<typeof IntegrationRecord>;

export const AppPolicyRecord = z.object({ tenant: z.string(), name: z.string(), active: z.boolean(), apps: z.array(z.string()), updatedAt: iso });
export type AppPolicyRecord = z.infer<typeof AppPolicyRecord>;

export const CloudState = z.object({
  version: z.literal(1),
  tenants: z.record(z.string(), z.object({ createdAt: iso })),
  pairingTokens: z.array(PairingTokenRecord),
  connectors: z.record(z.string(), ConnectorRecord),
  /** Certificate fingerprints that must never authenticate again, whatever the connector record says. */
  revokedCertificates: z.array(z.object({ fingerprint256: z.string(), connectorId: z.string(), revokedAt: iso })),
  apiKeys: z.array(ApiKeyRecord).default([]),
  managedTargets: z.array(ManagedTargetRecord).default([]),
  integrations: z.array(IntegrationRecord).default([]),
  appPolicies: z.array(AppPolicyRecord).default([]),
});
export type CloudState = z.infer<typeof CloudState>;

export type CloudStore = JsonStore<CloudState>;

/**
 * @param server the running cloud's store: it warms the encoding cache after each load (the CLI's
 *   one-shot commands do not, they write at most once).
 */
export function openCloudStore(dataDir: string, server?: { onLockCompromised(e: Error): void }): CloudStore {
  return new JsonStore<CloudState>({
    file: join(dataDir, 'cloud-state.json'),
    schema: CloudState,
    what: 'cloud state',
    empty: () => ({ version: 1, tenants: {}, pairingTokens: [], connectors: {}, revokedCertificates: [], apiKeys: [], managedTargets: [], integrations: [], appPolicies: [] }),
    // One record per paired connector: at 10,000 the file is ~21 MiB, and a pairing must not
    // re-copy, re-validate and re-serialize all of it (docs/performance.md).
    largeMaps: { connectors: ConnectorRecord },
    // (The warm-up waits a second after a load: a cloud starting up listens first.)
    ...(server ? { onLockCompromised: server.onLockCompromised, warmAfterLoadMs: 1000 } : {}),
  });
}
