/**
 * The simulated Hexnode portal: users, devices, device groups (the built-in dynamic ones and custom
 * ones with members) and per-device app inventories, generated from a seed so that a test, a demo
 * and a benchmark see the same fleet every time. Records are kept in the JSON shape the API answers
 * with (docs/simulators/hexnode.md), so routes hand them out without mapping.
 *
 * Same (seed, device count, asOf) => identical data. `asOf` anchors `last_reported` and friends, so a
 * fleet generated now looks recently active.
 */
import { APPS, BUILTIN_GROUPS, CUSTOM_GROUPS, EMAIL_DOMAIN, FIRST, INACTIVITY_DAYS, LAST, PLATFORMS, PLATFORM_WORD, imeiFor, phoneFor, serialFor, udidFor, type DynamicRule, type OsName } from './hexnode-catalog.js';
import { mixSeed, Rng } from './rng.js';

const MINUTE = 60_000;
const DAY = 86_400_000;

// ---- timestamps ------------------------------------------------------------------------------

/** `2022-04-04T07:09:25.362338Z`: UTC with microseconds, as Django writes DateTimeFields. */
export function hxTimeMicro(ms: number, micro: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}${String(Math.abs(Math.trunc(micro)) % 1000).padStart(3, '0')}Z`;
}

/** `2022-04-04T12:04:09.609Z`: UTC with milliseconds (how `last_reported` was recorded). */
export function hxTime(ms: number): string {
  return new Date(ms).toISOString();
}

// ---- record shapes (as the API answers) -----------------------------------------------------------

export type EnrollmentStatus = 'enrolled' | 'disenrolled';

/** A device as `GET /devices/` lists it (recorded fields first, then the chosen extras). */
export interface HxDevice {
  id: number;
  device_name: string;
  model_name: string;
  os_name: OsName;
  os_version: string;
  enrolled_time: string;
  /** null: enrolled but never reported since (chosen). */
  last_reported: string | null;
  compliant: boolean;
  serial_number: string;
  udid: string;
  enrollment_status: EnrollmentStatus;
  /** `email` is a chosen extra (the recording has id and name only). */
  user: { id: number; name: string; email: string };
  /** Empty when the device has no modem. */
  imei: string;
  /** Chosen extra: the SIM's number, empty when unknown. */
  phone_number: string;
}

/** A user as `GET /users/` lists it (field names from the vendor's docs). */
export interface HxUser {
  id: number;
  name: string;
  email: string;
  phoneno: string;
  domain: string;
}

/** A device's installed app as `GET /devices/{id}/applications/` lists it. */
export interface HxApp {
  id: number;
  name: string;
  identifier: string;
  version: string;
  managed: boolean;
}

export interface HxGroup {
  id: number;
  groupname: string;
  description: string;
  grouptype: 'custom' | 'dynamic';
  /** Dynamic groups: the rule that picks members (evaluated at request time). */
  rule?: DynamicRule;
  /** Custom groups: member device ids. */
  members: Set<number>;
  modifiedMs: number;
  modifiedMicro: number;
}

export class GroupError extends Error {
  override readonly name = 'GroupError';
  constructor(
    /** The field the error belongs to (DRF puts validation errors under the field name). */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

// ---- the dataset ---------------------------------------------------------------------------------

export interface GenerateOptions {
  devices: number;
  seed: number;
  /** Epoch ms that "now" is for `last_reported` & co. */
  asOf: number;
}

export class HexnodeData {
  readonly users: HxUser[] = [];
  /** In id order. */
  readonly devices: HxDevice[] = [];
  /** In id order. */
  readonly groups: HxGroup[] = [];
  private readonly deviceIndex = new Map<number, HxDevice>();
  private readonly userIndex = new Map<number, HxUser>();
  private readonly appIds = new Map<string, number>();
  private nextGroupId = 1;

  constructor(readonly options: GenerateOptions) {
    let id = 1;
    for (const os of Object.keys(APPS) as OsName[]) for (const a of APPS[os]) if (!this.appIds.has(`${os}:${a.identifier}`)) this.appIds.set(`${os}:${a.identifier}`, id++);
  }

  device(id: number): HxDevice | undefined {
    return this.deviceIndex.get(id);
  }

  user(id: number): HxUser | undefined {
    return this.userIndex.get(id);
  }

  group(id: number): HxGroup | undefined {
    return this.groups.find((g) => g.id === id);
  }

  /** Devices a user owns (for `total_devices`). */
  deviceCountOf(userId: number): number {
    let n = 0;
    for (const d of this.devices) if (d.user.id === userId) n++;
    return n;
  }

  /** Members of a group in device id order; dynamic rules are judged at `now`. */
  members(g: HxGroup, now: number): HxDevice[] {
    if (g.grouptype === 'custom') return this.devices.filter((d) => g.members.has(d.id));
    return this.devices.filter((d) => matchesRule(g.rule!, d, now));
  }

  /** The groups a device is in (custom and dynamic), in group id order. */
  groupsOf(d: HxDevice, now: number): HxGroup[] {
    return this.groups.filter((g) => (g.grouptype === 'custom' ? g.members.has(d.id) : matchesRule(g.rule!, d, now)));
  }

  /** The app inventory of a device, derived from the seed and the device id (not stored). */
  appsFor(d: HxDevice): HxApp[] {
    if (d.enrollment_status !== 'enrolled') return [];
    const rng = new Rng(mixSeed(this.options.seed, d.id));
    if (rng.chance(0.03)) return []; // enrolled, but no inventory reported yet
    const out: HxApp[] = [];
    for (const a of APPS[d.os_name]) {
      if (!a.required && !rng.chance(0.55)) continue;
      const latest = a.versions[a.versions.length - 1]!;
      out.push({ id: this.appIds.get(`${d.os_name}:${a.identifier}`)!, name: a.name, identifier: a.identifier, version: rng.chance(0.2) ? a.versions[0]! : latest, managed: a.managed });
    }
    return out;
  }

  /** Creates a custom group; throws GroupError for a taken name or unknown devices. */
  createGroup(name: string, description: string, deviceIds: readonly number[], now: number): HxGroup {
    if (this.groups.some((g) => g.groupname === name)) throw new GroupError('groupname', 'device group with this groupname already exists.');
    this.checkDevices('devices', deviceIds);
    const g: HxGroup = { id: this.nextGroupId++, groupname: name, description, grouptype: 'custom', members: new Set(deviceIds), modifiedMs: now, modifiedMicro: now % 1000 };
    this.groups.push(g);
    return g;
  }

  /**
   * Adds and removes members of a custom group. Unknown ids fail the whole request (DRF validates
   * before saving). An id in both lists ends up added, as the vendor documents.
   */
  changeMembers(g: HxGroup, add: readonly number[], remove: readonly number[], now: number): void {
    if (g.grouptype !== 'custom') throw new GroupError('detail', 'Devices cannot be added to or removed from a dynamic device group.');
    this.checkDevices('add_devices', add);
    this.checkDevices('remove_devices', remove);
    for (const id of remove) g.members.delete(id);
    for (const id of add) g.members.add(id);
    g.modifiedMs = now;
    g.modifiedMicro = now % 1000;
  }

  deleteGroup(g: HxGroup): void {
    if (g.grouptype !== 'custom') throw new GroupError('detail', 'Dynamic device groups cannot be deleted.');
    this.groups.splice(this.groups.indexOf(g), 1);
  }

  private checkDevices(field: string, ids: readonly number[]): void {
    const bad = ids.find((id) => !this.deviceIndex.has(id));
    if (bad !== undefined) throw new GroupError(field, `Invalid pk "${bad}" - object does not exist.`);
  }

  /** @internal used by the generator. */
  addGroup(g: Omit<HxGroup, 'id'> & { id?: number }): HxGroup {
    const id = g.id ?? this.nextGroupId;
    const group: HxGroup = { ...g, id };
    this.groups.push(group);
    this.nextGroupId = Math.max(this.nextGroupId, id + 1);
    return group;
  }

  /** @internal used by the generator. */
  skipGroupIds(n: number): void {
    this.nextGroupId += n;
  }

  /** @internal used by the generator. */
  index(): void {
    for (const d of this.devices) this.deviceIndex.set(d.id, d);
    for (const u of this.users) this.userIndex.set(u.id, u);
  }
}

function matchesRule(rule: DynamicRule, d: HxDevice, now: number): boolean {
  if (d.enrollment_status !== 'enrolled') return false;
  switch (rule) {
    case 'android':
    case 'ios':
    case 'macos':
    case 'tvos':
    case 'windows':
      return PLATFORM_WORD[d.os_name] === rule;
    case 'noncompliant':
      return !d.compliant;
    case 'inactive':
      return d.last_reported !== null && Date.parse(d.last_reported) < now - INACTIVITY_DAYS * DAY;
  }
}

// ---- the generator -------------------------------------------------------------------------------

export function generateHexnodeData(opts: GenerateOptions): HexnodeData {
  const rng = new Rng(opts.seed);
  const data = new HexnodeData(opts);
  const asOf = opts.asOf;
  const portalCreated = asOf - rng.int(400, 1200) * DAY;

  // Users: the portal's Default User (owner of shared devices), then about one person per 1.3 devices.
  data.users.push({ id: 1, name: 'Default User', email: '', phoneno: '', domain: 'local' });
  const people = Math.max(1, Math.ceil(opts.devices / 1.3));
  const taken = new Map<string, number>();
  const unique = (base: string): string => {
    const n = (taken.get(base) ?? 0) + 1;
    taken.set(base, n);
    return n === 1 ? base : `${base}${n}`;
  };
  const plain = (s: string): string => s.normalize('NFD').replace(/[^A-Za-z]/g, '').toLowerCase();
  for (let i = 0; i < people; i++) {
    const first = rng.pick(FIRST);
    const last = rng.pick(LAST);
    const ad = rng.chance(0.6);
    data.users.push({
      id: 2 + i,
      name: `${first} ${last}`,
      email: `${unique(`${plain(first)}.${plain(last)}`)}@${EMAIL_DOMAIN}`,
      phoneno: rng.chance(0.5) ? phoneFor(rng) : '',
      domain: ad ? 'northwind.local' : 'local',
    });
  }

  // Devices: ids grow with gaps (deleted devices), like a portal that has been in use for a while.
  const platforms = (Object.keys(PLATFORMS) as OsName[]).map((p) => [p, PLATFORMS[p].weight] as const);
  const traits = new Map<number, { os: OsName; shared: boolean; cellular: boolean }>();
  let nextId = 0;
  for (let i = 0; i < opts.devices; i++) {
    nextId += rng.weighted([[1, 85], [2, 10], [rng.int(3, 25), 5]] as const);
    const os = rng.weighted(platforms);
    const spec = PLATFORMS[os];
    const model = rng.pick(spec.models);
    const shared = model.shared === true;
    const person = data.users[rng.int(1, data.users.length - 1)]!;
    const owner = shared || data.users.length === 1 ? data.users[0]! : person;
    const status: EnrollmentStatus = rng.chance(0.9) ? 'enrolled' : 'disenrolled';
    // The last report first (recent for enrolled devices, long ago for disenrolled ones), then an
    // enrollment before it, never before the portal existed.
    const agoMin =
      status === 'enrolled'
        ? rng.weighted([[rng.int(1, 24 * 60), 72], [rng.int(24 * 60, 7 * 24 * 60), 18], [rng.int(8 * 24 * 60, 60 * 24 * 60), 10]] as const)
        : rng.int(30 * 24 * 60, 200 * 24 * 60);
    const reportedMs = asOf - agoMin * MINUTE - rng.int(0, 59_999);
    const enrolledMs = Math.max(portalCreated + rng.int(1, 30) * DAY + rng.int(0, DAY - 1), reportedMs - rng.int(1, 700) * DAY - rng.int(0, DAY - 1));
    const reported = status === 'enrolled' && rng.chance(0.01) ? null : hxTime(Math.max(reportedMs, enrolledMs + MINUTE));
    const first = owner.name.split(' ')[0]!;
    const deviceName = deviceNameFor(rng, os, model.model, model.manufacturer, shared ? null : first);
    const d: HxDevice = {
      id: nextId,
      device_name: deviceName,
      model_name: model.model,
      os_name: os,
      os_version: rng.pick(model.versions ?? spec.versions),
      enrolled_time: hxTimeMicro(enrolledMs, rng.int(0, 999)),
      last_reported: reported,
      compliant: status === 'enrolled' ? rng.chance(0.85) : false,
      serial_number: serialFor(rng, os, model),
      udid: udidFor(rng, os),
      enrollment_status: status,
      user: { id: owner.id, name: owner.name, email: owner.email },
      imei: model.cellular ? imeiFor(rng) : '',
      phone_number: model.cellular && rng.chance(0.8) ? phoneFor(rng) : '',
    };
    data.devices.push(d);
    traits.set(d.id, { os, shared, cellular: model.cellular });
  }
  data.index();

  // Groups: the built-in ones as a new portal has them, a deleted id, then the customer's groups.
  let created = portalCreated;
  for (const b of BUILTIN_GROUPS) {
    created += rng.int(1, 3); // created one after the other when the portal was set up
    data.addGroup({
      id: b.id,
      groupname: b.name,
      description: b.description,
      grouptype: b.type,
      ...(b.rule === undefined ? {} : { rule: b.rule }),
      members: new Set(),
      modifiedMs: created,
      modifiedMicro: rng.int(0, 999),
    });
  }
  data.skipGroupIds(1);
  for (const spec of CUSTOM_GROUPS) {
    const members = new Set<number>();
    for (const d of data.devices) {
      const t = traits.get(d.id)!;
      if (spec.eligible(t) && rng.chance(spec.share)) members.add(d.id);
    }
    data.addGroup({
      groupname: spec.name,
      description: spec.description,
      grouptype: 'custom',
      members,
      modifiedMs: asOf - rng.int(1, 120) * DAY - rng.int(0, DAY - 1),
      modifiedMicro: rng.int(0, 999),
    });
  }
  return data;
}

/** Hexnode's default names: manufacturer+model for Android, "Name's iPhone" for Apple, host names for PCs. */
function deviceNameFor(rng: Rng, os: OsName, model: string, manufacturer: string | undefined, firstName: string | null): string {
  switch (os) {
    case 'Android':
      return firstName && rng.chance(0.3) ? `${firstName}'s ${model}` : `${manufacturer ?? ''}${model}`;
    case 'iOS':
    case 'iPadOS': {
      const kind = model.startsWith('iPad') ? 'iPad' : 'iPhone';
      return firstName ? `${firstName}’s ${kind}` : `${kind} ${rng.chars(4, '0123456789')}`;
    }
    case 'macOS': {
      const kind = model.startsWith('MacBook Air') ? 'MacBook Air' : model.startsWith('MacBook Pro') ? 'MacBook Pro' : 'iMac';
      return firstName ? `${firstName}’s ${kind}` : `${kind} (Lobby)`;
    }
    case 'tvOS':
      return `Lobby Apple TV ${rng.int(1, 9)}`;
    case 'Windows':
      return rng.chance(0.6) ? `DESKTOP-${rng.chars(7, 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789')}` : `NW-${rng.chars(6, '0123456789')}`;
  }
}
