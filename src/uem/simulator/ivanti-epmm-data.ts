/**
 * The simulated Ivanti EPMM (MobileIron Core) server's data: devices as the v2 API's flat dotted-key
 * records, users, labels (system and admin, static and dynamic) with their members, and per-device app
 * inventories, generated from a seed so that a test, a demo and a benchmark see the same fleet every
 * time. Labels change at run time through the API (devices added to and removed from static labels,
 * static labels created on first use).
 *
 * Same (seed, device count, asOf) => identical data. `asOf` anchors `common.last_connected_at`, so a
 * fleet generated now looks recently active.
 */
import { mixSeed, Rng } from './rng.js';
import {
  ADMIN_DYNAMIC_LABELS,
  ADMIN_STATIC_LABELS,
  EMAIL_DOMAIN,
  EPMM_APPS,
  EPMM_PLATFORMS,
  FIRST,
  isScanner,
  LAST,
  serialFor,
  SYSTEM_LABELS,
  type EpmmPlatform,
  type LabelSpec,
} from './ivanti-epmm-catalog.js';
import { matches, parseQuery, type QueryNode, type QueryRecord, type QueryValue } from './ivanti-epmm-query.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

/** `2020-11-09T07:38:22.000Z`: how the v2 API writes `common.last_connected_at` (as recorded). */
export function epmmTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString();
}

export type DeviceStatus = 'ACTIVE' | 'RETIRED' | 'WIPED' | 'LOST' | 'VERIFICATION_PENDING' | 'RETIRE_PENDING';
export type Owner = 'COMPANY' | 'EMPLOYEE';

/**
 * A device as `GET /api/v2/devices` answers it when every field is asked for. `null` = the server
 * knows the field but has no value; the `ios.*` field exists on Apple devices only.
 */
export interface EpmmDevice {
  'common.id': number;
  'common.uuid': string;
  'common.SerialNumber': string;
  'common.imei': string | null;
  'common.imsi': string | null;
  'common.model': string;
  'common.manufacturer': string;
  'common.platform': EpmmPlatform;
  'common.platform_name': string;
  'common.os_version': string;
  'common.status': DeviceStatus;
  'common.compliant': boolean;
  'common.quarantined': boolean;
  'common.device_is_compromised': boolean;
  'common.owner': Owner;
  'common.last_connected_at': string | null;
  'common.registration_date': string;
  'common.current_phone_number': string | null;
  'common.wifi_mac_address': string;
  'common.client_version': string | null;
  'common.device_space_name': string;
  'user.user_id': string;
  'user.email_address': string;
  'user.display_name': string;
  'user.first_name': string;
  'user.last_name': string;
  'ios.DeviceName'?: string;
}

/** Every field name the simulator can search on and return (the `fields` parameter). */
export const DEVICE_FIELDS: ReadonlySet<string> = new Set<keyof EpmmDevice>([
  'common.id',
  'common.uuid',
  'common.SerialNumber',
  'common.imei',
  'common.imsi',
  'common.model',
  'common.manufacturer',
  'common.platform',
  'common.platform_name',
  'common.os_version',
  'common.status',
  'common.compliant',
  'common.quarantined',
  'common.device_is_compromised',
  'common.owner',
  'common.last_connected_at',
  'common.registration_date',
  'common.current_phone_number',
  'common.wifi_mac_address',
  'common.client_version',
  'common.device_space_name',
  'user.user_id',
  'user.email_address',
  'user.display_name',
  'user.first_name',
  'user.last_name',
  'ios.DeviceName',
]);

/** A device's fields by name (undefined: not a field of this device). */
export function fieldOf(d: EpmmDevice, name: string): QueryValue | undefined {
  return (d as unknown as Record<string, QueryValue | undefined>)[name];
}

export interface EpmmApp {
  name: string;
  version: string;
  /** Bundle id / package name (chosen: the reference only names `name` and `version`). */
  identifier: string;
  managed: boolean;
}

export interface EpmmLabel {
  id: number;
  name: string;
  description: string;
  rowType: 'SYSTEM' | 'ADMIN';
  /** Dynamic labels: the criteria text and its parsed form. Static labels: null. */
  criteria: string | null;
  predicate: QueryNode | null;
  /** Static labels: member device ids (common.id). Empty for dynamic ones. */
  members: Set<number>;
}

export interface EpmmUser {
  userId: string;
  email: string;
  first: string;
  last: string;
  display: string;
}

/** A label operation the API refuses (400): adding to a dynamic label, a bad name. */
export class LabelError extends Error {
  override readonly name = 'LabelError';
  constructor(
    readonly status: 400 | 404,
    message: string,
  ) {
    super(message);
  }
}

export interface GenerateOptions {
  devices: number;
  seed: number;
  /** Epoch ms that "now" is for last-connected timestamps. */
  asOf: number;
}

export const DEVICE_SPACE = { id: 1, name: 'Global', path: '/1/' } as const;
export const MAX_LABEL_NAME = 255;

export class EpmmData {
  /** Ordered by common.id. */
  readonly devices: EpmmDevice[] = [];
  readonly users: EpmmUser[] = [];
  readonly labels: EpmmLabel[] = [];
  private readonly byUuid = new Map<string, EpmmDevice>();
  private readonly byId = new Map<number, EpmmDevice>();

  constructor(readonly options: GenerateOptions) {}

  deviceByUuid(uuid: string): EpmmDevice | undefined {
    return this.byUuid.get(uuid.trim().toLowerCase());
  }

  deviceById(id: number): EpmmDevice | undefined {
    return this.byId.get(id);
  }

  label(id: number): EpmmLabel | undefined {
    return this.labels.find((l) => l.id === id);
  }

  /** Label names are unique regardless of case (the console refuses "vip" next to "VIP"). */
  labelByName(name: string): EpmmLabel | undefined {
    const n = name.toLowerCase();
    return this.labels.find((l) => l.name.toLowerCase() === n);
  }

  isMember(l: EpmmLabel, d: EpmmDevice): boolean {
    return l.predicate ? matches(l.predicate, d as unknown as QueryRecord) : l.members.has(d['common.id']);
  }

  /** Members in common.id order. */
  members(l: EpmmLabel): EpmmDevice[] {
    if (l.predicate) return this.devices.filter((d) => this.isMember(l, d));
    return [...l.members]
      .sort((a, b) => a - b)
      .map((id) => this.byId.get(id))
      .filter((d): d is EpmmDevice => d !== undefined);
  }

  deviceCount(l: EpmmLabel): number {
    return l.predicate ? this.members(l).length : l.members.size;
  }

  /** Creates an empty static ADMIN label (the simulator's answer to an add on an unknown name). */
  createStaticLabel(name: string): EpmmLabel {
    checkLabelName(name);
    if (this.labelByName(name)) throw new LabelError(400, `Label ${name} already exists.`);
    const label: EpmmLabel = {
      id: Math.max(199, ...this.labels.map((l) => l.id)) + 1,
      name,
      description: '',
      rowType: 'ADMIN',
      criteria: null,
      predicate: null,
      members: new Set(),
    };
    this.labels.push(label);
    return label;
  }

  /**
   * Applies `add` / `remove` of devices (by uuid) to the static label called `name`. Add creates the
   * label when no label has that name (even with no uuids); remove on an unknown name is a 404. Both
   * are idempotent per device; unknown uuids are ignored.
   */
  applyLabel(name: string, uuids: readonly string[], op: 'add' | 'remove'): { label: EpmmLabel; created: boolean; changed: number } {
    let label = this.labelByName(name);
    let created = false;
    if (!label) {
      if (op === 'remove') throw new LabelError(404, `Label ${name} not found.`);
      label = this.createStaticLabel(name);
      created = true;
    }
    if (label.predicate) throw new LabelError(400, `Label ${label.name} is a dynamic label; devices cannot be ${op === 'add' ? 'added to' : 'removed from'} it.`);
    let changed = 0;
    for (const u of uuids) {
      const d = this.deviceByUuid(u);
      if (!d) continue;
      const id = d['common.id'];
      if (op === 'add' && !label.members.has(id)) {
        label.members.add(id);
        changed++;
      } else if (op === 'remove' && label.members.delete(id)) changed++;
    }
    return { label, created, changed };
  }

  /** The app inventory of a device, derived from the seed and the device id (not stored). */
  appsFor(d: EpmmDevice): EpmmApp[] {
    const status = d['common.status'];
    if (status === 'VERIFICATION_PENDING' || status === 'RETIRED' || status === 'WIPED') return [];
    const rng = new Rng(mixSeed(this.options.seed ^ 0x1e9a, d['common.id']));
    if (rng.chance(0.03)) return []; // registered, but no inventory reported yet
    const out: EpmmApp[] = [];
    for (const a of EPMM_APPS[d['common.platform']]) {
      if (!a.required && !rng.chance(0.55)) continue;
      const current = a.versions[a.versions.length - 1]!;
      out.push({ name: a.name, version: rng.chance(0.15) ? a.versions[0]! : current, identifier: a.identifier, managed: a.required === true || rng.chance(0.5) });
    }
    return out;
  }

  /** @internal used by the generator. */
  index(): void {
    this.byUuid.clear();
    this.byId.clear();
    for (const d of this.devices) {
      this.byUuid.set(d['common.uuid'], d);
      this.byId.set(d['common.id'], d);
    }
  }
}

export function checkLabelName(name: string): void {
  if (name.trim().length === 0 || name.length > MAX_LABEL_NAME) throw new LabelError(400, `Invalid label name: it must have 1 to ${MAX_LABEL_NAME} characters.`);
  if (/[\u0000-\u001f\u007f/\\]/.test(name)) throw new LabelError(400, 'Invalid label name: it must not contain control characters, "/" or "\\".');
}

function dynamicLabel(spec: LabelSpec): EpmmLabel {
  const criteria = spec.criteria ?? null;
  return {
    id: spec.id,
    name: spec.name,
    description: spec.description,
    rowType: spec.rowType,
    criteria,
    predicate: criteria === null ? null : parseQuery(criteria, { knownField: (f) => DEVICE_FIELDS.has(f) }),
    members: new Set(),
  };
}

const plain = (s: string): string =>
  s
    .normalize('NFD')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();

export function generateEpmmData(opts: GenerateOptions): EpmmData {
  const rng = new Rng(opts.seed);
  const data = new EpmmData(opts);
  const asOf = opts.asOf;

  // People: about one per 1.3 devices, so some carry two or three devices.
  const taken = new Map<string, number>();
  const unique = (base: string): string => {
    const n = (taken.get(base) ?? 0) + 1;
    taken.set(base, n);
    return n === 1 ? base : `${base}${n}`;
  };
  const userCount = Math.max(1, Math.ceil(opts.devices / 1.3));
  for (let i = 0; i < userCount; i++) {
    const first = rng.pick(FIRST);
    const last = rng.pick(LAST);
    data.users.push({
      userId: unique(`${plain(first)[0]}${plain(last)}`),
      email: `${unique(`${plain(first)}.${plain(last)}`)}@${EMAIL_DOMAIN}`,
      first,
      last,
      display: `${first} ${last}`,
    });
  }
  // Pool accounts the rugged scanners are enrolled with.
  const pools: EpmmUser[] = [1, 2, 3].map((n) => ({
    userId: `dc-scanner-0${n}`,
    email: `dc-scanner-0${n}@${EMAIL_DOMAIN}`,
    first: 'DC',
    last: `Scanner Pool 0${n}`,
    display: `DC Scanner Pool 0${n}`,
  }));
  data.users.push(...pools);

  // Devices. Ids grow with gaps, like a Core where devices were deleted.
  let nextId = 1000;
  const platforms = (Object.keys(EPMM_PLATFORMS) as EpmmPlatform[]).map((p) => [p, EPMM_PLATFORMS[p].weight] as const);
  for (let i = 0; i < opts.devices; i++) {
    nextId += rng.weighted([[1, 85], [2, 10], [rng.int(3, 30), 5]] as const);
    const platform = rng.weighted(platforms);
    const spec = EPMM_PLATFORMS[platform];
    const model = rng.pick(spec.models);
    const scanner = isScanner(model);
    const owner: Owner = scanner || rng.chance(spec.corporateShare) ? 'COMPANY' : 'EMPLOYEE';
    const user = scanner ? rng.pick(pools) : data.users[rng.int(0, userCount - 1)]!;
    const os = rng.pick(spec.os);
    const status = rng.weighted([['ACTIVE', 85], ['RETIRED', 6], ['VERIFICATION_PENDING', 4], ['WIPED', 2], ['LOST', 1], ['RETIRE_PENDING', 2]] as const);

    const agoMin =
      status === 'ACTIVE'
        ? rng.weighted([[rng.int(1, 24 * 60), 72], [rng.int(24 * 60, 14 * 24 * 60), 23], [rng.int(15 * 24 * 60, 90 * 24 * 60), 5]] as const)
        : status === 'RETIRED' || status === 'WIPED'
          ? rng.int(30 * 24 * 60, 300 * 24 * 60)
          : rng.int(24 * 60, 45 * 24 * 60);
    const seen = asOf - agoMin * MINUTE - rng.int(0, 59_999);
    const registered = seen - rng.int(10, 900) * DAY - rng.int(0, DAY - 1);
    const neverConnected = status === 'VERIFICATION_PENDING';
    const compliant = status === 'VERIFICATION_PENDING' ? true : rng.chance(0.86);
    const phone = model.phone && !neverConnected;
    const d: EpmmDevice = {
      'common.id': nextId,
      'common.uuid': rng.uuid(),
      'common.SerialNumber': serialFor(rng, model),
      'common.imei': phone ? rng.chars(15, '0123456789') : null,
      'common.imsi': phone && rng.chance(0.8) ? `310${rng.chars(12, '0123456789')}` : null,
      'common.model': model.model,
      'common.manufacturer': model.manufacturer,
      'common.platform': platform,
      'common.platform_name': spec.platformName(os),
      'common.os_version': os,
      'common.status': status,
      'common.compliant': compliant,
      'common.quarantined': !compliant && rng.chance(0.4),
      'common.device_is_compromised': status === 'ACTIVE' && (platform === 'iOS' || platform === 'Android') && rng.chance(0.02),
      'common.owner': owner,
      'common.last_connected_at': neverConnected ? null : epmmTime(seen),
      'common.registration_date': epmmTime(neverConnected ? asOf - rng.int(1, 20) * DAY : registered),
      'common.current_phone_number': phone && !scanner && rng.chance(0.6) ? `+1555${rng.chars(7, '0123456789')}` : null,
      'common.wifi_mac_address': Array.from({ length: 6 }, () => rng.hex(2)).join(':'),
      'common.client_version': neverConnected ? null : EPMM_APPS[platform][0]!.versions[rng.int(0, 1)]!,
      'common.device_space_name': 'Global',
      'user.user_id': user.userId,
      'user.email_address': user.email,
      'user.display_name': user.display,
      'user.first_name': user.first,
      'user.last_name': user.last,
    };
    if (model.kind) d['ios.DeviceName'] = rng.chance(0.85) ? `${user.first}’s ${model.kind}` : `${model.kind}-${rng.chars(5, '0123456789')}`;
    data.devices.push(d);
  }
  data.index();

  // Labels: system ones, admin dynamic ones, admin static ones with members.
  for (const spec of [...SYSTEM_LABELS, ...ADMIN_DYNAMIC_LABELS]) data.labels.push(dynamicLabel(spec));
  const addStatic = (s: { id: number; name: string; description: string }, pick: (d: EpmmDevice) => boolean): void => {
    const l: EpmmLabel = { ...s, rowType: 'ADMIN', criteria: null, predicate: null, members: new Set() };
    for (const d of data.devices) if (pick(d)) l.members.add(d['common.id']);
    data.labels.push(l);
  };
  const corp = (d: EpmmDevice): boolean => d['common.owner'] === 'COMPANY' && !d['common.manufacturer'].startsWith('Zebra');
  addStatic(ADMIN_STATIC_LABELS.warehouse, (d) => d['common.manufacturer'].startsWith('Zebra') && d['common.status'] !== 'RETIRED');
  addStatic(ADMIN_STATIC_LABELS.sales, (d) => corp(d) && (d['common.platform'] === 'iOS' || d['common.platform'] === 'Windows') && rng.chance(0.3));
  addStatic(ADMIN_STATIC_LABELS.executives, (d) => corp(d) && rng.chance(0.03));
  addStatic(ADMIN_STATIC_LABELS.loaners, (d) => corp(d) && rng.chance(0.02));
  addStatic(ADMIN_STATIC_LABELS.lost, (d) => d['common.status'] === 'LOST');
  return data;
}
