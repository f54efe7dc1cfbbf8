/**
 * What the simulated Hexnode fleet is made of: platforms (as Hexnode's `os_name` spells them) with
 * their models, OS versions and identifier formats, per-platform app catalogs, people's names, the
 * portal's built-in device groups (as recorded on a real portal) and the customer's own groups. Plain
 * data; hexnode-data.ts draws from it.
 */
import type { Rng } from './rng.js';

/** `os_name` values the simulator produces (Hexnode writes them like this in device records). */
export type OsName = 'Android' | 'iOS' | 'iPadOS' | 'Windows' | 'macOS' | 'tvOS';

/** The lower-case platform word of group detail records (`"platform":"android"`). */
export const PLATFORM_WORD: Record<OsName, string> = {
  Android: 'android',
  iOS: 'ios',
  iPadOS: 'ios',
  Windows: 'windows',
  macOS: 'macos',
  tvOS: 'tvos',
};

export interface ModelSpec {
  /** `model_name` as reported. */
  model: string;
  /** Android: the manufacturer Hexnode prefixes to the default device name ("OnePlusONEPLUS A5000"). */
  manufacturer?: string;
  /** Has a SIM: an IMEI and usually a phone number. */
  cellular: boolean;
  /** Rugged or shared devices (scanners, kiosks) that belong to the portal's Default User. */
  shared?: boolean;
  /** OS versions this model runs, when narrower than the platform's list. */
  versions?: string[];
}

export interface PlatformSpec {
  weight: number;
  models: ModelSpec[];
  versions: string[];
}

export const PLATFORMS: Record<OsName, PlatformSpec> = {
  Android: {
    weight: 34,
    models: [
      { model: 'SM-G991B', manufacturer: 'Samsung', cellular: true, versions: ['12', '13', '14'] },
      { model: 'SM-A546B', manufacturer: 'Samsung', cellular: true, versions: ['13', '14'] },
      { model: 'SM-T505', manufacturer: 'Samsung', cellular: true, versions: ['10', '11', '12'] },
      { model: 'SM-X200', manufacturer: 'Samsung', cellular: false, shared: true, versions: ['12', '13', '14'] },
      { model: 'Pixel 7', manufacturer: 'Google', cellular: true, versions: ['13', '14'] },
      { model: 'Pixel 8 Pro', manufacturer: 'Google', cellular: true, versions: ['14'] },
      { model: 'ONEPLUS A5000', manufacturer: 'OnePlus', cellular: true, versions: ['7.1.1', '9', '10'] },
      { model: 'moto g(30)', manufacturer: 'motorola', cellular: true, versions: ['11', '12'] },
      { model: 'TC52', manufacturer: 'Zebra Technologies', cellular: false, shared: true, versions: ['10', '11', '13'] },
      { model: 'CT40', manufacturer: 'Honeywell', cellular: false, shared: true, versions: ['9', '10', '11'] },
    ],
    versions: ['10', '11', '12', '13', '14'],
  },
  iOS: {
    weight: 26,
    models: [
      { model: 'iPhone 12', cellular: true },
      { model: 'iPhone 13', cellular: true },
      { model: 'iPhone 14 Pro', cellular: true, versions: ['16.7.8', '17.4.1', '17.5.1', '17.6.1'] },
      { model: 'iPhone 15', cellular: true, versions: ['17.4.1', '17.5.1', '17.6.1'] },
      { model: 'iPhone SE (3rd generation)', cellular: true, versions: ['16.7.8', '17.5.1', '17.6.1'] },
    ],
    versions: ['15.8.2', '16.7.8', '17.4.1', '17.5.1', '17.6.1'],
  },
  iPadOS: {
    weight: 8,
    models: [
      { model: 'iPad (9th generation)', cellular: false, shared: true },
      { model: 'iPad Air (5th generation)', cellular: true },
      { model: 'iPad Pro (11-inch) (4th generation)', cellular: false },
    ],
    versions: ['16.7.8', '17.4.1', '17.5.1'],
  },
  Windows: {
    weight: 20,
    models: [
      { model: 'Latitude 5440', cellular: false },
      { model: 'Latitude 7430', cellular: false },
      { model: 'ThinkPad T14 Gen 3', cellular: false },
      { model: 'HP EliteBook 840 G9', cellular: false },
      { model: 'Surface Pro 9', cellular: false },
      { model: 'OptiPlex 7010', cellular: false, shared: true },
    ],
    versions: ['10.0.19045', '10.0.22621', '10.0.22631'],
  },
  macOS: {
    weight: 10,
    models: [
      { model: 'MacBook Pro (14-inch, 2023)', cellular: false },
      { model: 'MacBook Air (M2, 2022)', cellular: false },
      { model: 'iMac (24-inch, M1, 2021)', cellular: false, shared: true },
    ],
    versions: ['13.6.7', '14.4.1', '14.5', '14.6.1'],
  },
  tvOS: {
    weight: 2,
    models: [{ model: 'Apple TV 4K (3rd generation)', cellular: false, shared: true }],
    versions: ['17.4', '17.5'],
  },
};

export interface AppSpec {
  name: string;
  /** Package name / bundle id / Windows product name (Hexnode's `identifier`). */
  identifier: string;
  versions: string[];
  /** Deployed by the portal (managed) rather than installed by the user. */
  managed: boolean;
  /** Every enrolled device of the platform has it (the Hexnode agent). */
  required?: boolean;
}

const ANDROID_APPS: AppSpec[] = [
  { name: 'Hexnode UEM', identifier: 'com.hexnode.mdm', versions: ['15.2.0', '15.3.1'], managed: true, required: true },
  { name: 'Microsoft Outlook', identifier: 'com.microsoft.office.outlook', versions: ['4.2412.1', '4.2420.0'], managed: true },
  { name: 'Microsoft Teams', identifier: 'com.microsoft.teams', versions: ['1416/1.0.0.2024053002', '1416/1.0.0.2024070101'], managed: true },
  { name: 'Google Chrome', identifier: 'com.android.chrome', versions: ['125.0.6422.165', '126.0.6478.122'], managed: false },
  { name: 'Slack', identifier: 'com.Slack', versions: ['24.06.10.0', '24.07.10.0'], managed: true },
  { name: 'Zoom', identifier: 'us.zoom.videomeetings', versions: ['6.0.12.21633', '6.1.0.22127'], managed: false },
  { name: 'WhatsApp', identifier: 'com.whatsapp', versions: ['2.24.12.78', '2.24.14.79'], managed: false },
  { name: 'Hexnode Kiosk Browser', identifier: 'com.hexnode.browser', versions: ['3.1.2'], managed: true },
  { name: 'StockRight Scanner', identifier: 'com.northwind.stockright', versions: ['2.3.0', '2.4.1'], managed: true },
];

const IOS_APPS: AppSpec[] = [
  { name: 'Hexnode UEM', identifier: 'com.mitsogo.hexnodemdm', versions: ['7.4.1', '7.5.0'], managed: true, required: true },
  { name: 'Microsoft Outlook', identifier: 'com.microsoft.Office.Outlook', versions: ['4.2423.0', '4.2425.0'], managed: true },
  { name: 'Microsoft Teams', identifier: 'com.microsoft.skype.teams', versions: ['6.11.1', '6.12.0'], managed: true },
  { name: 'Slack', identifier: 'com.tinyspeck.chatlyio', versions: ['24.06.10', '24.07.10'], managed: true },
  { name: 'Zoom', identifier: 'us.zoom.videomeetings', versions: ['6.0.12', '6.1.0'], managed: false },
  { name: 'Google Chrome', identifier: 'com.google.chrome.ios', versions: ['125.0.6422.80', '126.0.6478.54'], managed: false },
  { name: 'WhatsApp Messenger', identifier: 'net.whatsapp.WhatsApp', versions: ['24.12.78', '24.14.79'], managed: false },
  { name: 'Northwind Field', identifier: 'com.northwind.field', versions: ['3.8.0', '3.9.2'], managed: true },
];

const WINDOWS_APPS: AppSpec[] = [
  { name: 'Hexnode UEM', identifier: 'Hexnode UEM', versions: ['3.6.1', '3.7.0'], managed: true, required: true },
  { name: 'Microsoft Edge', identifier: 'Microsoft.MicrosoftEdge.Stable', versions: ['125.0.2535.92', '126.0.2592.87'], managed: false },
  { name: 'Microsoft Teams', identifier: 'MSTeams', versions: ['24124.2315.2911.3357', '24152.405.2925.6762'], managed: true },
  { name: 'Google Chrome', identifier: 'Google Chrome', versions: ['125.0.6422.142', '126.0.6478.127'], managed: true },
  { name: '7-Zip 23.01 (x64)', identifier: '7-Zip', versions: ['23.01'], managed: false },
  { name: 'Zoom Workplace', identifier: 'ZoomUMX', versions: ['6.0.11', '6.1.1'], managed: false },
  { name: 'Microsoft 365 Apps for enterprise - en-us', identifier: 'O365ProPlusRetail - en-us', versions: ['16.0.17628.20144', '16.0.17726.20160'], managed: true },
];

const MAC_APPS: AppSpec[] = [
  { name: 'Hexnode UEM', identifier: 'com.hexnode.hexnodeagent', versions: ['2.8.2', '2.9.0'], managed: true, required: true },
  { name: 'Google Chrome', identifier: 'com.google.Chrome', versions: ['125.0.6422.142', '126.0.6478.127'], managed: false },
  { name: 'Slack', identifier: 'com.tinyspeck.slackmacgap', versions: ['4.38.125', '4.39.90'], managed: true },
  { name: 'Microsoft Outlook', identifier: 'com.microsoft.Outlook', versions: ['16.85', '16.86'], managed: true },
  { name: 'zoom.us', identifier: 'us.zoom.xos', versions: ['6.0.11', '6.1.1'], managed: false },
  { name: 'Visual Studio Code', identifier: 'com.microsoft.VSCode', versions: ['1.89.1', '1.90.2'], managed: false },
];

const TVOS_APPS: AppSpec[] = [{ name: 'Northwind Lobby Board', identifier: 'com.northwind.lobbyboard', versions: ['1.2.0'], managed: true, required: true }];

export const APPS: Record<OsName, AppSpec[]> = {
  Android: ANDROID_APPS,
  iOS: IOS_APPS,
  iPadOS: IOS_APPS,
  Windows: WINDOWS_APPS,
  macOS: MAC_APPS,
  tvOS: TVOS_APPS,
};

export const EMAIL_DOMAIN = 'northwind.example';

export const FIRST = [
  'Aisha', 'Ben', 'Carla', 'Dmitri', 'Elena', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kavya', 'Liam', 'Maya', 'Nikhil',
  'Olivia', 'Pedro', 'Quinn', 'Rosa', 'Sven', 'Tara', 'Umar', 'Vera', 'Wen', 'Ximena', 'Yusuf', 'Zoë', 'Anna', 'David',
  'Sarah', 'Michael', 'Priya', 'Tom', 'Chloé', 'Mateo', 'Hannah', 'Raj',
];

export const LAST = [
  'Abbott', 'Bianchi', 'Chen', 'Dubois', 'Eriksen', 'Fernández', 'Garcia', 'Hoffmann', 'Iyer', 'Jensen', 'Kowalski', 'Lee',
  'Müller', 'Nakamura', 'Okafor', 'Patel', 'Quist', 'Rossi', 'Schmidt', 'Tanaka', 'Usman', 'Varga', 'Wright', 'Yilmaz',
  'Zhang', 'Martin', "O'Brien", 'Nair', 'Smith', 'Kim',
];

/** The portal's built-in groups, with the ids, names and descriptions recorded on a new portal. */
export interface BuiltinGroupSpec {
  id: number;
  name: string;
  description: string;
  type: 'custom' | 'dynamic';
  /** Dynamic groups: which rule picks their devices. */
  rule?: DynamicRule;
}

export type DynamicRule = 'android' | 'inactive' | 'ios' | 'macos' | 'noncompliant' | 'tvos' | 'windows';

export const BUILTIN_GROUPS: BuiltinGroupSpec[] = [
  { id: 1, name: 'Demo - Custom Device Group', description: 'A sample device group.', type: 'custom' },
  { id: 2, name: 'All Android Devices', description: 'A dynamic group of all Android devices enrolled.', type: 'dynamic', rule: 'android' },
  { id: 3, name: 'All Inactive Devices', description: 'Devices that have not communicated with the portal during the defined inactivity period.', type: 'dynamic', rule: 'inactive' },
  { id: 4, name: 'All iOS Devices', description: 'A dynamic group of all iOS devices enrolled.', type: 'dynamic', rule: 'ios' },
  { id: 5, name: 'All macOS Devices', description: 'A dynamic group of all macOS devices.', type: 'dynamic', rule: 'macos' },
  { id: 6, name: 'All Non-Compliant Devices', description: 'A dynamic group of all non-compliant devices.', type: 'dynamic', rule: 'noncompliant' },
  { id: 7, name: 'All TvOS Devices', description: 'A dynamic group of all tvOS devices enrolled.', type: 'dynamic', rule: 'tvos' },
  { id: 8, name: 'All Windows Devices', description: 'A dynamic group of all Windows devices enrolled.', type: 'dynamic', rule: 'windows' },
];

/** The customer's own custom groups (ids follow the built-in ones, with a gap for a deleted one). */
export interface CustomGroupSpec {
  name: string;
  description: string;
  /** Share (0..1) of the eligible devices placed in the group. */
  share: number;
  eligible: (d: { os: OsName; shared: boolean; cellular: boolean }) => boolean;
}

export const CUSTOM_GROUPS: CustomGroupSpec[] = [
  { name: 'Sales Team', description: 'Phones and laptops of the sales team', share: 0.3, eligible: (d) => !d.shared && d.os !== 'tvOS' },
  { name: 'Field Engineers', description: 'Company phones and tablets used on customer sites', share: 0.35, eligible: (d) => !d.shared && d.cellular },
  { name: 'Warehouse Scanners', description: 'Rugged Android scanners in the warehouses', share: 1, eligible: (d) => d.shared && d.os === 'Android' },
  { name: 'Lobby Kiosks', description: 'Shared tablets, desktops and displays in reception areas', share: 1, eligible: (d) => d.shared && d.os !== 'Android' },
  { name: 'Executives', description: '', share: 0.08, eligible: (d) => !d.shared && (d.os === 'iOS' || d.os === 'iPadOS' || d.os === 'macOS') },
  { name: 'BYOD', description: 'Personal devices enrolled through self-enrollment', share: 0.2, eligible: (d) => !d.shared && (d.os === 'Android' || d.os === 'iOS') },
];

/** Days without a report after which a device counts as inactive ("All Inactive Devices"). */
export const INACTIVITY_DAYS = 7;

// ---- identifier formats ---------------------------------------------------------------------------

const UPPER_ALNUM = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789';
const LOWER_ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
const DIGITS = '0123456789';

export function serialFor(rng: Rng, os: OsName, spec: ModelSpec): string {
  switch (os) {
    case 'Android':
      if (spec.manufacturer === 'Samsung') return `R5${rng.chars(1, 'CGKNR')}${rng.chars(8, UPPER_ALNUM)}`;
      if (spec.manufacturer === 'Zebra Technologies') return `${rng.chars(5, DIGITS)}52${rng.chars(7, DIGITS)}`;
      // Android 10+ hides the hardware serial from apps; the agent then reports an id-like value.
      return rng.chars(12, LOWER_ALNUM);
    case 'iOS':
    case 'iPadOS':
    case 'macOS':
    case 'tvOS':
      return rng.chance(0.5) ? rng.chars(10, UPPER_ALNUM) : `${rng.chars(1, 'CDFGH')}${rng.chars(11, UPPER_ALNUM)}`;
    case 'Windows':
      return spec.model.startsWith('HP') ? `5CG${rng.chars(7, UPPER_ALNUM)}` : spec.model.startsWith('ThinkPad') ? `PF${rng.chars(6, UPPER_ALNUM)}` : rng.chars(7, UPPER_ALNUM);
  }
}

/** Android: the 16-hex Android id; Apple mobile: the 25-character UDID; Mac/Windows: a GUID. */
export function udidFor(rng: Rng, os: OsName): string {
  switch (os) {
    case 'Android':
      return rng.hex(16);
    case 'iOS':
    case 'iPadOS':
    case 'tvOS':
      return `0000${rng.chars(4, '0123456789ABCDEF')}-00${rng.chars(14, '0123456789ABCDEF')}`;
    case 'macOS':
    case 'Windows':
      return rng.uuid().toUpperCase();
  }
}

/** A 15-digit IMEI with a valid Luhn check digit. */
export function imeiFor(rng: Rng): string {
  const body = `35${rng.chars(12, DIGITS)}`;
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return `${body}${(10 - (sum % 10)) % 10}`;
}

/** E.164 numbers in ranges reserved for fiction (US 555-01xx, UK 07700 900xxx). */
export function phoneFor(rng: Rng): string {
  return rng.chance(0.7) ? `+1${rng.pick(['212', '415', '512', '617', '206'])}55501${rng.chars(2, DIGITS)}` : `+447700900${rng.chars(3, DIGITS)}`;
}
