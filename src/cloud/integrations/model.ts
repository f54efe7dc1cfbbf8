/**
 * What an integration is (docs/integrations.md), and the validation of what admins send: every bad
 * value gets 400 naming the field and the allowed range, as the seed guides state them.
 */
import { UemlinkError } from '../../common/errors.js';
import { API_ROOT, VENDORS, type Vendor } from '../../uem/adapter.js';

/** Allowed sync intervals (minutes), per the vendors' guides: partner UEMs sync devices less often. */
export const INTERVALS: Record<Vendor, { device: { min: number; max: number; step: number }; app: { min: number; max: number; step: number } }> = {
  'workspace-one': { device: { min: 10, max: 1440, step: 10 }, app: { min: 10, max: 1440, step: 10 } },
  'ivanti-epmm': { device: { min: 10, max: 1440, step: 10 }, app: { min: 10, max: 1440, step: 10 } },
  hexnode: { device: { min: 30, max: 1440, step: 10 }, app: { min: 10, max: 1440, step: 10 } },
};

export const DEFAULT_SYNC = {
  groups: [] as string[],
  pii: { deviceName: true, deviceNumber: true, email: true },
  deviceSyncIntervalMinutes: 60,
  appSyncIntervalMinutes: 60,
  deviceDeletionThresholdPercent: 100,
  deviceDeletionAfterSyncs: 1,
};

export const DEFAULT_TAGGING = { deviceStatus: false, deviceRisk: false, threatFactors: false, prefix: 'uemlink' };

export type Route = { via: 'direct' } | { via: 'connector'; group: string; target: string } | { via: 'connector'; group: string; push: true };

/** Credentials as the admin gives them (secrets are sealed before they are stored). */
export type IntegrationAuth =
  | { type: 'basic'; username?: string; password?: string; apiKey?: string }
  | { type: 'oauth2'; clientId: string; clientSecret: string; tokenUrl: string };

export interface SyncSettings {
  groups: string[];
  pii: { deviceName: boolean; deviceNumber: boolean; email: boolean };
  deviceSyncIntervalMinutes: number;
  appSyncIntervalMinutes: number;
  deviceDeletionThresholdPercent: number;
  deviceDeletionAfterSyncs: number;
}

export interface TaggingSettings {
  deviceStatus: boolean;
  deviceRisk: boolean;
  threatFactors: boolean;
  /** Tag names are `<prefix>_Status_Active`, `<prefix>_Risk_High`, `<prefix>_TF_<factor>`. */
  prefix: string;
}

/** The parts of an integration that come from the admin (no secrets in clear once stored). */
export interface IntegrationInput {
  vendor: Vendor;
  displayName: string;
  serverAddress?: string;
  auth?: IntegrationAuth;
  selfSignedCertPem?: string;
  route: Route;
  sync: SyncSettings;
  tagging: TaggingSettings;
}

const bad = (field: string, msg: string): UemlinkError => new UemlinkError('INVALID_INPUT', `${field}: ${msg}`);

function str(v: unknown, field: string, max = 200): string {
  if (typeof v !== 'string' || v.trim() === '' || v.length > max) throw bad(field, `must be a non-empty string of at most ${max} characters`);
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
  return v;
}

function intIn(v: unknown, field: string, r: { min: number; max: number; step?: number }): number {
  const step = r.step ?? 1;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < r.min || v > r.max || (v - r.min) % step !== 0) {
    throw bad(field, `must be a whole number from ${r.min} to ${r.max}${step > 1 ? ` in steps of ${step}` : ''} (got ${JSON.stringify(v)})`);
  }
  return v;
}

function httpsUrl(v: unknown, field: string): string {
  const s = str(v, field, 2000);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw bad(field, 'must be an https URL');
  }
  if (u.protocol !== 'https:' || u.username || u.password || u.search || u.hash) throw bad(field, 'must be an https URL without credentials, query or fragment');
  return s.replace(/\/+$/, '');
}

const GROUP_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const TARGET_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

function route(v: unknown): Route {
  if (typeof v !== 'object' || v === null) throw bad('route', 'must be {"via": "direct"} or {"via": "connector", "group": …, "target" | "push": …}');
  const r = v as Record<string, unknown>;
  if (r.via === 'direct') return { via: 'direct' };
  if (r.via !== 'connector') throw bad('route.via', 'must be "direct" or "connector"');
  const group = r.group === undefined ? 'default' : r.group;
  if (typeof group !== 'string' || !GROUP_RE.test(group)) throw bad('route.group', 'must be a connector group name');
  if (r.push === true && r.target === undefined) return { via: 'connector', group, push: true };
  if (r.target !== undefined && r.push !== undefined) throw bad('route', 'give either "target" (a target defined on the connector) or "push": true, not both');
  if (r.target !== undefined) {
    // Said about the field itself: "needs either target or push" sent admins who had given a target hunting.
    if (typeof r.target !== 'string' || !TARGET_RE.test(r.target)) throw bad('route.target', 'must be the id of a target defined on the connector: 1-64 letters, digits, "-" or "_"');
    return { via: 'connector', group, target: r.target };
  }
  throw bad('route', 'a connector route needs either "target" (a target defined on the connector) or "push": true');
}

function auth(v: unknown, vendor: Vendor): IntegrationAuth {
  if (typeof v !== 'object' || v === null) throw bad('auth', 'must be an object with "type"');
  const a = v as Record<string, unknown>;
  if (a.type === 'oauth2') {
    if (vendor !== 'workspace-one') throw bad('auth.type', `${vendor} supports basic authentication only`);
    return { type: 'oauth2', clientId: str(a.clientId, 'auth.clientId'), clientSecret: str(a.clientSecret, 'auth.clientSecret', 1000), tokenUrl: httpsUrl(a.tokenUrl, 'auth.tokenUrl') };
  }
  if (a.type !== 'basic') throw bad('auth.type', vendor === 'workspace-one' ? 'must be "basic" or "oauth2"' : 'must be "basic"');
  const out: IntegrationAuth = { type: 'basic' };
  if (a.username !== undefined) out.username = str(a.username, 'auth.username');
  if (a.password !== undefined) out.password = str(a.password, 'auth.password', 1000);
  if (a.apiKey !== undefined) out.apiKey = str(a.apiKey, 'auth.apiKey', 1000);
  if (vendor === 'hexnode') {
    if (!out.apiKey) throw bad('auth.apiKey', "is required: Hexnode's API authenticates with the portal's API key");
  } else {
    if (!out.username) throw bad('auth.username', 'is required');
    if (!out.password) throw bad('auth.password', 'is required');
    if (vendor === 'workspace-one' && !out.apiKey) throw bad('auth.apiKey', 'is required: the Workspace ONE REST API key (aw-tenant-code)');
  }
  return out;
}

function sync(v: unknown, vendor: Vendor, base: SyncSettings): SyncSettings {
  if (v === undefined) return base;
  if (typeof v !== 'object' || v === null) throw bad('sync', 'must be an object');
  const s = v as Record<string, unknown>;
  const out: SyncSettings = { ...base, pii: { ...base.pii } };
  if (s.groups !== undefined) {
    if (!Array.isArray(s.groups) || s.groups.length > 500) throw bad('sync.groups', 'must be a list of group ids (as GET …/groups returns them)');
    out.groups = [...new Set(s.groups.map((g, i) => str(typeof g === 'number' ? String(g) : g, `sync.groups[${i}]`, 100)))];
  }
  if (s.pii !== undefined) {
    if (typeof s.pii !== 'object' || s.pii === null) throw bad('sync.pii', 'must be an object');
    const p = s.pii as Record<string, unknown>;
    for (const k of Object.keys(p)) if (!['deviceName', 'deviceNumber', 'email'].includes(k)) throw bad(`sync.pii.${k}`, 'unknown switch (deviceName, deviceNumber, email)');
    if (p.deviceName !== undefined) out.pii.deviceName = bool(p.deviceName, 'sync.pii.deviceName');
    if (p.deviceNumber !== undefined) out.pii.deviceNumber = bool(p.deviceNumber, 'sync.pii.deviceNumber');
    if (p.email !== undefined) out.pii.email = bool(p.email, 'sync.pii.email');
  }
  const r = INTERVALS[vendor];
  if (s.deviceSyncIntervalMinutes !== undefined) out.deviceSyncIntervalMinutes = intIn(s.deviceSyncIntervalMinutes, 'sync.deviceSyncIntervalMinutes', r.device);
  else intIn(out.deviceSyncIntervalMinutes, 'sync.deviceSyncIntervalMinutes', r.device);
  if (s.appSyncIntervalMinutes !== undefined) out.appSyncIntervalMinutes = intIn(s.appSyncIntervalMinutes, 'sync.appSyncIntervalMinutes', r.app);
  if (s.deviceDeletionThresholdPercent !== undefined) out.deviceDeletionThresholdPercent = intIn(s.deviceDeletionThresholdPercent, 'sync.deviceDeletionThresholdPercent', { min: 0, max: 100 });
  if (s.deviceDeletionAfterSyncs !== undefined) out.deviceDeletionAfterSyncs = intIn(s.deviceDeletionAfterSyncs, 'sync.deviceDeletionAfterSyncs', { min: 1, max: 100 });
  for (const k of Object.keys(s)) {
    if (!['groups', 'pii', 'deviceSyncIntervalMinutes', 'appSyncIntervalMinutes', 'deviceDeletionThresholdPercent', 'deviceDeletionAfterSyncs'].includes(k)) throw bad(`sync.${k}`, 'unknown setting');
  }
  return out;
}

function tagging(v: unknown, base: TaggingSettings): TaggingSettings {
  if (v === undefined) return base;
  if (typeof v !== 'object' || v === null) throw bad('tagging', 'must be an object');
  const t = v as Record<string, unknown>;
  const out = { ...base };
  for (const k of ['deviceStatus', 'deviceRisk', 'threatFactors'] as const) if (t[k] !== undefined) out[k] = bool(t[k], `tagging.${k}`);
  if (t.prefix !== undefined) {
    if (typeof t.prefix !== 'string' || !/^[A-Za-z][A-Za-z0-9_-]{0,30}$/.test(t.prefix)) throw bad('tagging.prefix', 'must be 1-31 letters, digits, "_" or "-", starting with a letter');
    out.prefix = t.prefix;
  }
  for (const k of Object.keys(t)) if (!['deviceStatus', 'deviceRisk', 'threatFactors', 'prefix'].includes(k)) throw bad(`tagging.${k}`, 'unknown switch');
  return out;
}

/**
 * Validates a create body, or an update body merged onto the current input (`current`); the result
 * is complete and consistent. Unknown top-level keys are refused (typos must not pass silently).
 */
export function parseIntegrationInput(body: unknown, current?: IntegrationInput): IntegrationInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!['vendor', 'displayName', 'serverAddress', 'auth', 'selfSignedCertPem', 'route', 'sync', 'tagging'].includes(k)) throw bad(k, 'unknown field');
  }
  if (current && b.vendor !== undefined && b.vendor !== current.vendor) throw bad('vendor', 'cannot be changed; create a new integration');
  const vendor = (current?.vendor ?? b.vendor) as Vendor;
  if (!VENDORS.includes(vendor)) throw bad('vendor', `must be one of ${VENDORS.map((v) => `"${v}"`).join(', ')}`);
  const out: IntegrationInput = {
    vendor,
    displayName: b.displayName !== undefined ? str(b.displayName, 'displayName', 100) : current ? current.displayName : str(b.displayName, 'displayName', 100),
    route: b.route !== undefined ? route(b.route) : current ? current.route : route(b.route),
    sync: sync(b.sync, vendor, current?.sync ?? { ...DEFAULT_SYNC, pii: { ...DEFAULT_SYNC.pii }, deviceSyncIntervalMinutes: Math.max(DEFAULT_SYNC.deviceSyncIntervalMinutes, INTERVALS[vendor].device.min) }),
    tagging: tagging(b.tagging, current?.tagging ?? { ...DEFAULT_TAGGING }),
  };
  const serverAddress = b.serverAddress !== undefined ? (b.serverAddress === null ? undefined : httpsUrl(b.serverAddress, 'serverAddress')) : current?.serverAddress;
  if (serverAddress) out.serverAddress = serverAddress;
  const a = b.auth !== undefined ? (b.auth === null ? undefined : auth(b.auth, vendor)) : current?.auth;
  if (a) out.auth = a;
  if (b.selfSignedCertPem !== undefined && b.selfSignedCertPem !== null) {
    if (typeof b.selfSignedCertPem !== 'string' || !b.selfSignedCertPem.includes('-----BEGIN CERTIFICATE-----')) throw bad('selfSignedCertPem', 'must be a PEM certificate (base64, "-----BEGIN CERTIFICATE-----")');
    out.selfSignedCertPem = b.selfSignedCertPem;
  } else if (b.selfSignedCertPem === undefined && current?.selfSignedCertPem) out.selfSignedCertPem = current.selfSignedCertPem;
  // Where the server details are needed: the cloud talks to the UEM itself, or pushes them.
  const needsServer = out.route.via === 'direct' || 'push' in out.route;
  if (needsServer) {
    if (!out.serverAddress) throw bad('serverAddress', `is required for a ${out.route.via === 'direct' ? 'direct route' : 'pushed target'}`);
    if (!out.auth) throw bad('auth', `is required for a ${out.route.via === 'direct' ? 'direct route' : 'pushed target'}`);
  }
  return out;
}

/** The vendor's API root under a server address (https://uem.corp.local → …/API). */
export function apiBaseOf(vendor: Vendor, serverAddress: string): string {
  const root = API_ROOT[vendor];
  const s = serverAddress.replace(/\/+$/, '');
  return s.toLowerCase().endsWith(root.toLowerCase()) ? s : `${s}${root}`;
}

/** An integration's id as the service makes it: checked before a URL's id reaches a lookup. */
export const INTEGRATION_ID_RE = /^int_[0-9a-f]{16}$/;
