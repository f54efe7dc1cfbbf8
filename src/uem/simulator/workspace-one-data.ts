/**
 * The simulated Workspace ONE tenant: an organization-group tree, users, devices, smart groups,
 * tags and per-device app inventories, generated from a seed so that a test, a demo and a benchmark
 * see the same fleet every time. Records are kept in the JSON shape the API answers with (the
 * recorded shapes in docs/uem-simulator.md), so routes can hand them out without mapping.
 *
 * Same (seed, device count, asOf) => identical data. `asOf` anchors the LastSeen timestamps, so a
 * fleet generated now looks recently active to an adapter that judges staleness.
 */

import { mixSeed, Rng } from './rng.js';
import { APPS, EMAIL_DOMAIN, FIRST, GLOBAL_OG, LAST, OG_TREE, PLATFORMS, reportedName, serialFor, udidFor } from './workspace-one-catalog.js';

// ---- timestamps ------------------------------------------------------------------------------

/** Workspace ONE writes "never" as the .NET minimum date. */
export const NEVER = '0001-01-01T00:00:00.000';

/** `2021-06-28T04:35:20.150`: UTC, millisecond precision, no zone (as the API writes them). */
export function wsTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 23);
}

/** Parses a zone-less API timestamp (or any Date.parse-able string) as UTC; NaN when invalid. */
export function parseWsTime(s: string): number {
  const t = /^\d{4}-\d{2}-\d{2}(T[\d:.]+)?$/.test(s) ? Date.parse(s.includes('T') ? `${s}Z` : `${s}T00:00:00Z`) : Date.parse(s);
  return t;
}

/** `10/27/2023 3:05:53 PM`: the US format organization groups' CreatedOn uses. */
export function usDateTime(ms: number): string {
  const d = new Date(ms);
  const h = d.getUTCHours();
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()} ${h % 12 || 12}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} ${h < 12 ? 'AM' : 'PM'}`;
}

const MINUTE = 60_000;
const DAY = 86_400_000;
// ---- record shapes -----------------------------------------------------------------------------

export interface IdValue {
  Value: number;
}

export interface EntityRef {
  Id: IdValue;
  Name: string;
  Uuid: string;
}

export type Ownership = 'C' | 'E' | 'S';
export type Platform = 'Apple' | 'AppleOsX' | 'Android' | 'WinRT';

/** A device as `/mdm/devices/search` returns it. */
export interface WsDevice {
  Id: IdValue;
  Uuid: string;
  Udid: string;
  SerialNumber: string;
  MacAddress: string;
  Imei: string;
  EasId: string;
  AssetNumber: string;
  DeviceFriendlyName: string;
  DeviceReportedName: string;
  LocationGroupId: EntityRef;
  LocationGroupName: string;
  UserId: EntityRef;
  UserName: string;
  UserEmailAddress: string;
  Ownership: Ownership;
  PlatformId: { Id: IdValue; Name: Platform };
  Platform: Platform;
  ModelId: { Id: IdValue; Name: string };
  Model: string;
  OperatingSystem: string;
  PhoneNumber: string;
  LastSeen: string;
  EnrollmentStatus: 'Enrolled' | 'Unenrolled' | 'EnterpriseWipePending' | 'Registered';
  ComplianceStatus: 'Compliant' | 'NonCompliant' | 'NotAvailable';
  CompromisedStatus: boolean;
  LastEnrolledOn: string;
  LastComplianceCheckOn: string;
  LastCompromisedCheckOn: string;
  IsSupervised: boolean;
  DataEncryptionYN: 'Y' | 'N';
  VirtualMemory: number;
  DeviceCapacity: number;
  AvailableDeviceCapacity: number;
}

export interface WsApp {
  name: string;
  installed_status: 'Installed' | 'Pending Install';
  installed_version: string;
  assigned_version: string;
  bundle_id: string;
}

export interface OrgGroup {
  id: number;
  uuid: string;
  name: string;
  groupId: string;
  type: 'Customer' | 'Container' | 'Region';
  parentId: number;
  parentUuid: string;
  level: number;
  country: string;
  createdOn: number;
  admins: number;
  /** Filled after devices are generated: devices and distinct users in this group and below. */
  deviceCount: number;
  userCount: number;
}

export interface WsUser {
  id: number;
  uuid: string;
  userName: string;
  email: string;
}

export interface SmartGroup {
  id: number;
  uuid: string;
  name: string;
  managedBy: OrgGroup;
  assignments: number;
  exclusions: number;
  matches(d: WsDevice): boolean;
}

export interface Tag {
  id: number;
  uuid: string;
  name: string;
  /** 1 = Device (the only type the simulator knows). */
  type: number;
  locationGroupId: number;
  createdOn: string;
  /** Device id -> DateTagged. Insertion order = order of tagging. */
  devices: Map<number, string>;
}

export interface BulkFault {
  ItemValue: string;
  ErrorCode: number;
  Message: string;
}

/** What `adddevices` / `removedevices` answer (shape chosen: see docs/uem-simulator.md). */
export interface BulkResult {
  TotalItems: number;
  AcceptedItems: number;
  FailedItems: number;
  Faults: { Fault: BulkFault[] };
}
// ---- the dataset -----------------------------------------------------------------------------

export interface GenerateOptions {
  devices: number;
  seed: number;
  /** Epoch ms that "now" is for LastSeen & co. */
  asOf: number;
}

export class WorkspaceOneData {
  /** Pre-order: the customer group first, each group before its children. */
  readonly groups: OrgGroup[] = [];
  readonly users: WsUser[] = [];
  readonly devices: WsDevice[] = [];
  readonly smartGroups: SmartGroup[] = [];
  readonly tags: Tag[] = [];
  private readonly groupIndex = new Map<number, OrgGroup>();
  private readonly deviceIndex = new Map<number, WsDevice>();
  private readonly deviceUuidIndex = new Map<string, WsDevice>();
  /** For ids and uuids of things created at run time (tags); seeded, so runs repeat. */
  private readonly runtimeRng: Rng;

  constructor(readonly options: GenerateOptions) {
    this.runtimeRng = new Rng(mixSeed(options.seed, 0x7a95));
  }

  get customer(): OrgGroup {
    return this.groups[0]!;
  }

  group(id: number): OrgGroup | undefined {
    return this.groupIndex.get(id);
  }

  device(id: number): WsDevice | undefined {
    return this.deviceIndex.get(id);
  }

  deviceByUuid(uuid: string): WsDevice | undefined {
    return this.deviceUuidIndex.get(uuid.toLowerCase());
  }

  /** The group and everything below it, in pre-order. */
  subtree(id: number): OrgGroup[] {
    const root = this.groupIndex.get(id);
    if (!root) return [];
    const out: OrgGroup[] = [];
    const walk = (g: OrgGroup): void => {
      out.push(g);
      for (const c of this.groups) if (c.parentId === g.id) walk(c);
    };
    walk(root);
    return out;
  }

  /** True when `groupId` is `rootId` or below it. */
  isWithin(groupId: number, rootId: number): boolean {
    for (let g = this.groupIndex.get(groupId); g; g = this.groupIndex.get(g.parentId)) if (g.id === rootId) return true;
    return false;
  }

  /** The app inventory of a device, derived from the seed and the device id (not stored). */
  appsFor(d: WsDevice): WsApp[] {
    if (d.EnrollmentStatus === 'Registered') return [];
    const rng = new Rng(mixSeed(this.options.seed, d.Id.Value));
    if (rng.chance(0.04)) return []; // enrolled, but the Hub has not reported an inventory yet
    const out: WsApp[] = [];
    for (const a of APPS[d.Platform]) {
      if (!a.required && !rng.chance(0.6)) continue;
      const assigned = a.versions[a.versions.length - 1]!;
      const pending = rng.chance(0.05);
      out.push({
        name: a.name,
        installed_status: pending ? 'Pending Install' : 'Installed',
        installed_version: pending ? '' : rng.chance(0.15) ? a.versions[0]! : assigned,
        assigned_version: assigned,
        bundle_id: a.bundleId,
      });
    }
    return out;
  }

  tag(id: number): Tag | undefined {
    return this.tags.find((t) => t.id === id);
  }

  private lastTagId = 0;

  /** An admin deletes a tag in the console (tests of a group that vanished under the cloud). */
  deleteTag(id: number): boolean {
    const i = this.tags.findIndex((t) => t.id === id);
    if (i < 0) return false;
    this.tags.splice(i, 1);
    return true;
  }

  /** Creates a device tag; throws TagError when the name is taken in that group or the group is unknown. */
  createTag(name: string, locationGroupId: number, now: number): Tag {
    if (!this.groupIndex.has(locationGroupId)) throw new TagError(`Organization group ${locationGroupId} was not found.`);
    const clash = this.tags.find((t) => t.locationGroupId === locationGroupId && t.name.toLowerCase() === name.toLowerCase());
    if (clash) throw new TagError(`A tag named ${name} already exists in this organization group.`);
    // Ids only grow: a real server never gives a deleted tag's id to a new one.
    this.lastTagId = Math.max(this.lastTagId, 9999, ...this.tags.map((t) => t.id)) + 1;
    const tag: Tag = {
      id: this.lastTagId,
      uuid: this.runtimeRng.uuid(),
      name,
      type: 1,
      locationGroupId,
      createdOn: wsTime(now),
      devices: new Map(),
    };
    this.tags.push(tag);
    return tag;
  }

  /**
   * Tags or untags devices by id. Idempotent per item (tagging a tagged device is accepted); unknown
   * ids and devices outside the tag's organization group are faults, the rest still happen.
   */
  bulkTag(tag: Tag, values: ReadonlyArray<string | number>, op: 'add' | 'remove', now: number): BulkResult {
    const faults: BulkFault[] = [];
    for (const raw of values) {
      const v = String(raw).trim();
      const d = /^\d+$/.test(v) ? this.deviceIndex.get(Number(v)) : undefined;
      if (!d) {
        faults.push({ ItemValue: v, ErrorCode: 404, Message: `Device ${v} was not found.` });
        continue;
      }
      if (!this.isWithin(d.LocationGroupId.Id.Value, tag.locationGroupId)) {
        faults.push({ ItemValue: v, ErrorCode: 400, Message: `Device ${v} is not in organization group ${tag.locationGroupId} or below it.` });
        continue;
      }
      if (op === 'add') {
        if (!tag.devices.has(d.Id.Value)) tag.devices.set(d.Id.Value, wsTime(now));
      } else tag.devices.delete(d.Id.Value);
    }
    return { TotalItems: values.length, AcceptedItems: values.length - faults.length, FailedItems: faults.length, Faults: { Fault: faults } };
  }

  /** @internal used by the generator. */
  index(): void {
    this.groupIndex.clear();
    for (const g of this.groups) this.groupIndex.set(g.id, g);
    for (const d of this.devices) {
      this.deviceIndex.set(d.Id.Value, d);
      this.deviceUuidIndex.set(d.Uuid.toLowerCase(), d);
    }
  }
}

export class TagError extends Error {
  override readonly name = 'TagError';
}

export function generateWorkspaceOneData(opts: GenerateOptions): WorkspaceOneData {
  const rng = new Rng(opts.seed);
  const data = new WorkspaceOneData(opts);
  const asOf = opts.asOf;

  // Organization groups.
  const tenantCreated = asOf - rng.int(400, 1500) * DAY;
  for (const spec of OG_TREE) {
    const parent = data.groups.find((g) => g.id === spec.parent);
    data.groups.push({
      id: spec.id,
      uuid: rng.uuid(),
      name: spec.name,
      groupId: spec.groupId,
      type: spec.type,
      parentId: spec.parent,
      parentUuid: parent?.uuid ?? GLOBAL_OG.uuid,
      level: parent ? parent.level + 1 : 0,
      country: spec.country,
      createdOn: tenantCreated + (parent ? rng.int(1, 90) * DAY + rng.int(0, DAY - 1) : 0),
      admins: parent ? rng.int(0, 3) : rng.int(2, 6),
      deviceCount: 0,
      userCount: 0,
    });
  }
  // Order pre-order so the customer is first and children follow their parent.
  const byParent = (id: number): OrgGroup[] => data.groups.filter((g) => g.parentId === id);
  const ordered: OrgGroup[] = [];
  const walk = (g: OrgGroup): void => {
    ordered.push(g);
    byParent(g.id).forEach(walk);
  };
  walk(data.groups.find((g) => g.type === 'Customer')!);
  data.groups.splice(0, data.groups.length, ...ordered);
  data.index();
  const og = (id: number): OrgGroup => data.group(id)!;

  // Users: about one per 1.4 devices, so some people carry two or three devices.
  const userCount = Math.max(1, Math.ceil(opts.devices / 1.4));
  const taken = new Map<string, number>();
  const unique = (base: string): string => {
    const n = (taken.get(base) ?? 0) + 1;
    taken.set(base, n);
    return n === 1 ? base : `${base}${n}`;
  };
  for (let i = 0; i < userCount; i++) {
    const first = rng.pick(FIRST);
    const last = rng.pick(LAST);
    const plain = (s: string): string => s.normalize('NFD').replace(/[^A-Za-z]/g, '').toLowerCase();
    const userName = unique(`${plain(first)[0]}${plain(last)}`);
    data.users.push({ id: 100 + i, uuid: rng.uuid(), userName, email: `${unique(`${plain(first)}.${plain(last)}`)}@${EMAIL_DOMAIN}` });
  }
  // Shared (staging) accounts used by shared devices in stores.
  const sharedUsers = new Map<number, WsUser>();
  for (const storeId of [576, 577, 573]) {
    const g = og(storeId);
    const u: WsUser = { id: 90 + sharedUsers.size, uuid: rng.uuid(), userName: `shared.${g.groupId.replace('acme-', '')}`, email: `shared.${g.groupId.replace('acme-', '')}@${EMAIL_DOMAIN}` };
    sharedUsers.set(storeId, u);
    data.users.push(u);
  }

  // Devices. Ids grow with gaps, like a real tenant where devices were deleted.
  let nextId = 5000;
  const platforms = (Object.keys(PLATFORMS) as Platform[]).map((p) => [p, PLATFORMS[p].weight] as const);
  for (let i = 0; i < opts.devices; i++) {
    nextId += rng.weighted([[1, 80], [2, 15], [rng.int(3, 40), 5]] as const);
    const platform = rng.weighted(platforms);
    const spec = PLATFORMS[platform];
    const mobile = platform === 'Apple' || platform === 'Android';
    const ownership: Ownership = rng.weighted(mobile ? ([['C', 60], ['E', 25], ['S', 15]] as const) : ([['C', 82], ['E', 18]] as const));
    const groupId =
      ownership === 'E' ? 578 : ownership === 'S' ? rng.weighted([[576, 45], [577, 45], [573, 10]] as const) : rng.weighted([[574, 30], [575, 15], [571, 10], [572, 35], [570, 10]] as const);
    const group = og(groupId);
    const user = ownership === 'S' ? sharedUsers.get(groupId)! : data.users[rng.int(0, userCount - 1)]!;
    const model = rng.pick(spec.models);
    const os = rng.pick(spec.os);
    const status = rng.weighted([['Enrolled', 88], ['Registered', 4], ['Unenrolled', 5], ['EnterpriseWipePending', 3]] as const);

    let lastSeen = NEVER;
    let enrolledOn = NEVER;
    let checked = NEVER;
    if (status !== 'Registered') {
      const agoMin =
        status === 'Enrolled'
          ? rng.weighted([[rng.int(1, 24 * 60), 70], [rng.int(24 * 60, 14 * 24 * 60), 25], [rng.int(15 * 24 * 60, 90 * 24 * 60), 5]] as const)
          : rng.int(30 * 24 * 60, 300 * 24 * 60);
      const seen = asOf - agoMin * MINUTE - rng.int(0, 59_999);
      lastSeen = wsTime(seen);
      enrolledOn = wsTime(seen - rng.int(10, 700) * DAY - rng.int(0, DAY - 1));
      checked = status === 'Enrolled' && rng.chance(0.98) ? wsTime(seen - rng.int(0, 6 * 60) * MINUTE) : NEVER;
    }
    const compliance: WsDevice['ComplianceStatus'] = status === 'Enrolled' ? rng.weighted([['Compliant', 80], ['NonCompliant', 15], ['NotAvailable', 5]] as const) : 'NotAvailable';
    const serial = serialFor(rng, platform);
    const capacity = platform === 'WinRT' || platform === 'AppleOsX' ? rng.pick([256, 512, 1024]) * 1024 : rng.pick([64, 128, 256]) * 1024;
    const osShort = platform === 'WinRT' ? (Number(os.split('.')[2]) >= 22000 ? '11' : '10') : os;
    const d: WsDevice = {
      Id: { Value: nextId },
      Uuid: rng.uuid(),
      Udid: udidFor(rng, platform),
      SerialNumber: serial,
      MacAddress: rng.chars(12, '0123456789ABCDEF'),
      Imei: spec.phone && !model.name.startsWith('iPad') ? rng.chars(15, '0123456789') : '',
      EasId: mobile ? rng.chars(20, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') : '',
      AssetNumber: ownership === 'C' && rng.chance(0.5) ? `ACME-${rng.chars(6, '0123456789')}` : '',
      DeviceFriendlyName: `${user.userName} ${model.name} ${spec.label} ${osShort}`,
      DeviceReportedName: reportedName(rng, platform, user.userName, model.name),
      LocationGroupId: { Id: { Value: group.id }, Name: group.name, Uuid: group.uuid },
      LocationGroupName: group.name,
      UserId: { Id: { Value: user.id }, Name: user.userName, Uuid: user.uuid },
      UserName: user.userName,
      UserEmailAddress: user.email,
      Ownership: ownership,
      PlatformId: { Id: { Value: spec.platformId }, Name: platform },
      Platform: platform,
      ModelId: { Id: { Value: model.modelId }, Name: model.name },
      Model: model.name,
      OperatingSystem: os,
      PhoneNumber: spec.phone && !model.name.startsWith('iPad') && rng.chance(0.6) ? `+1555${rng.chars(7, '0123456789')}` : '',
      LastSeen: lastSeen,
      EnrollmentStatus: status,
      ComplianceStatus: compliance,
      CompromisedStatus: status === 'Enrolled' && mobile && rng.chance(0.03),
      LastEnrolledOn: enrolledOn,
      LastComplianceCheckOn: checked,
      LastCompromisedCheckOn: checked,
      IsSupervised: platform === 'Apple' && ownership !== 'E',
      DataEncryptionYN: rng.chance(0.93) ? 'Y' : 'N',
      VirtualMemory: 0,
      DeviceCapacity: capacity,
      AvailableDeviceCapacity: Math.floor(capacity * (0.1 + rng.next() * 0.8)),
    };
    data.devices.push(d);
  }
  data.index();

  // Counts per group include everything below it (what the console shows for a group).
  for (const g of data.groups) {
    const users = new Set<number>();
    let n = 0;
    for (const d of data.devices) {
      if (!data.isWithin(d.LocationGroupId.Id.Value, g.id)) continue;
      n++;
      users.add(d.UserId.Id.Value);
    }
    g.deviceCount = n;
    g.userCount = users.size;
  }

  // Smart groups.
  const sg = (name: string, managedBy: number, matches: (d: WsDevice) => boolean): void => {
    data.smartGroups.push({ id: 31 + data.smartGroups.length, uuid: rng.uuid(), name, managedBy: og(managedBy), assignments: rng.int(0, 12), exclusions: rng.int(0, 2), matches });
  };
  sg('All Devices', 570, () => true);
  sg('All Corporate Dedicated Devices', 570, (d) => d.Ownership === 'C');
  sg('All Corporate Shared Devices', 570, (d) => d.Ownership === 'S');
  sg('All Employee Owned Devices', 570, (d) => d.Ownership === 'E');
  sg('iOS Devices', 570, (d) => d.Platform === 'Apple');
  sg('macOS Devices', 570, (d) => d.Platform === 'AppleOsX');
  sg('Android Devices', 570, (d) => d.Platform === 'Android');
  sg('Windows Devices', 570, (d) => d.Platform === 'WinRT');
  sg('Retail Store Devices', 573, (d) => data.isWithin(d.LocationGroupId.Id.Value, 573));
  sg('Sales Laptops', 572, (d) => d.LocationGroupId.Id.Value === 572 && (d.Platform === 'WinRT' || d.Platform === 'AppleOsX'));

  // Tags, with a few devices already tagged.
  const seedTag = (id: number, name: string, groupId: number, pick: (d: WsDevice) => boolean): void => {
    const t: Tag = { id, uuid: rng.uuid(), name, type: 1, locationGroupId: groupId, createdOn: wsTime(asOf - rng.int(30, 400) * DAY), devices: new Map() };
    for (const d of data.devices) if (data.isWithin(d.LocationGroupId.Id.Value, groupId) && pick(d)) t.devices.set(d.Id.Value, wsTime(asOf - rng.int(1, 29) * DAY - rng.int(0, DAY - 1)));
    data.tags.push(t);
  };
  seedTag(10000, 'VIP', 570, (d) => d.Ownership === 'C' && rng.chance(0.03));
  seedTag(10001, 'Loaner', 570, (d) => d.Ownership === 'C' && rng.chance(0.02));
  seedTag(10002, 'Kiosk', 570, (d) => d.Ownership === 'S' && rng.chance(0.5));
  seedTag(10003, 'Front Desk', 576, (d) => d.Ownership === 'S' && rng.chance(0.3));
  return data;
}
