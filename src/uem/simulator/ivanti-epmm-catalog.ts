/**
 * What the simulated Ivanti EPMM (MobileIron Core) fleet is made of: platforms with their models,
 * manufacturers and OS versions, app catalogs, people, and the labels a Core ships with or an admin
 * typically adds. Plain data; ivanti-epmm-data.ts draws from it.
 */
import type { Rng } from './rng.js';

/** `common.platform` as the v2 API spells it. */
export type EpmmPlatform = 'iOS' | 'Android' | 'Windows' | 'macOS';

export interface EpmmModel {
  /** `common.model`. */
  model: string;
  /** `common.manufacturer`. */
  manufacturer: string;
  /** Has a SIM: IMEI, maybe a phone number. */
  phone: boolean;
  /** How `ios.DeviceName` calls it ("Jane's iPhone"); Apple only. */
  kind?: string;
}

export interface EpmmPlatformSpec {
  weight: number;
  models: EpmmModel[];
  /** `common.os_version` values. */
  os: string[];
  /** `common.platform_name` from the OS version. */
  platformName(os: string): string;
  /** Share of COMPANY-owned devices (the rest are EMPLOYEE). */
  corporateShare: number;
}

export const EPMM_PLATFORMS: Record<EpmmPlatform, EpmmPlatformSpec> = {
  iOS: {
    weight: 45,
    models: [
      { model: 'iPhone 13', manufacturer: 'Apple', phone: true, kind: 'iPhone' },
      { model: 'iPhone 14', manufacturer: 'Apple', phone: true, kind: 'iPhone' },
      { model: 'iPhone 15 Pro', manufacturer: 'Apple', phone: true, kind: 'iPhone' },
      { model: 'iPhone SE (3rd generation)', manufacturer: 'Apple', phone: true, kind: 'iPhone' },
      { model: 'iPad (10th generation)', manufacturer: 'Apple', phone: false, kind: 'iPad' },
      { model: 'iPad Air (5th generation)', manufacturer: 'Apple', phone: false, kind: 'iPad' },
    ],
    os: ['16.7.10', '17.6.1', '18.1.1', '18.3.2'],
    platformName: (os) => `iOS ${os}`,
    corporateShare: 0.7,
  },
  Android: {
    weight: 35,
    models: [
      { model: 'Pixel 7', manufacturer: 'Google', phone: true },
      { model: 'Pixel 8', manufacturer: 'Google', phone: true },
      { model: 'SM-S911B', manufacturer: 'samsung', phone: true },
      { model: 'SM-A546B', manufacturer: 'samsung', phone: true },
      { model: 'TC52', manufacturer: 'Zebra Technologies', phone: false },
      { model: 'TC57', manufacturer: 'Zebra Technologies', phone: true },
    ],
    os: ['12.0', '13.0', '14.0'],
    platformName: (os) => `Android ${os.split('.')[0]!}`,
    corporateShare: 0.65,
  },
  Windows: {
    weight: 15,
    models: [
      { model: 'Latitude 5440', manufacturer: 'Dell Inc.', phone: false },
      { model: 'ThinkPad T14 Gen 4', manufacturer: 'LENOVO', phone: false },
      { model: 'Surface Laptop 5', manufacturer: 'Microsoft Corporation', phone: false },
      { model: 'HP EliteBook 840 G10', manufacturer: 'HP', phone: false },
    ],
    os: ['10.0.19045', '10.0.22621', '10.0.22631'],
    platformName: (os) => (Number(os.split('.')[2]) >= 22000 ? 'Windows 11' : 'Windows 10'),
    corporateShare: 0.92,
  },
  macOS: {
    weight: 5,
    models: [
      { model: 'MacBook Pro (14-inch, 2023)', manufacturer: 'Apple', phone: false, kind: 'MacBook Pro' },
      { model: 'MacBook Air (M2, 2022)', manufacturer: 'Apple', phone: false, kind: 'MacBook Air' },
    ],
    os: ['14.6.1', '15.2', '15.3.1'],
    platformName: (os) => `macOS ${os}`,
    corporateShare: 0.9,
  },
};

/** Rugged scanners are shared, company-owned and signed in with a pool account. */
export function isScanner(m: EpmmModel): boolean {
  return m.manufacturer === 'Zebra Technologies';
}

/** A serial number in the shape the manufacturer uses. */
export function serialFor(rng: Rng, m: EpmmModel): string {
  const AZ09 = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789';
  switch (m.manufacturer) {
    case 'Apple':
      return rng.chars(12, AZ09);
    case 'samsung':
      return `R5${rng.chars(1, 'CGHJKN')}${rng.chars(8, AZ09)}`;
    case 'Google':
      return rng.chars(14, '0123456789ABCDEF');
    case 'Zebra Technologies':
      return `2${rng.chars(13, '0123456789')}`;
    case 'Dell Inc.':
      return rng.chars(7, AZ09);
    case 'LENOVO':
      return `PF${rng.chars(6, AZ09)}`;
    case 'HP':
      return `5CG${rng.chars(7, AZ09)}`;
    default:
      return rng.chars(12, '0123456789');
  }
}

export interface AppSpec {
  name: string;
  /** Bundle id / package name / Windows package family. */
  identifier: string;
  /** Oldest first; the last one is current. */
  versions: string[];
  /** Pushed to every device of the platform. */
  required?: boolean;
}

export const EPMM_APPS: Record<EpmmPlatform, AppSpec[]> = {
  iOS: [
    { name: 'Mobile@Work', identifier: 'com.mobileiron.phoenix', versions: ['12.11.0', '12.12.0'], required: true },
    { name: 'Ivanti Tunnel', identifier: 'com.mobileiron.ios.tunnel', versions: ['4.8.0', '4.9.0'], required: true },
    { name: 'Microsoft Outlook', identifier: 'com.microsoft.Office.Outlook', versions: ['4.2424.0', '4.2431.0'], required: true },
    { name: 'Microsoft Teams', identifier: 'com.microsoft.skype.teams', versions: ['6.21.1', '6.22.2'] },
    { name: 'Microsoft Authenticator', identifier: 'com.microsoft.azureauthenticator', versions: ['6.8.14', '6.8.16'] },
    { name: 'Slack', identifier: 'com.tinyspeck.chatlyio', versions: ['24.09.10', '24.10.20'] },
    { name: 'Zoom Workplace', identifier: 'us.zoom.videomeetings', versions: ['6.2.0', '6.2.5'] },
    { name: 'Google Chrome', identifier: 'com.google.chrome.ios', versions: ['129.0.6668.46', '130.0.6723.37'] },
    { name: 'Salesforce', identifier: 'com.salesforce.chatter', versions: ['250.010', '252.020'] },
    { name: 'Workday', identifier: 'com.workday.workdayapp', versions: ['2024.38', '2024.40'] },
  ],
  Android: [
    { name: 'Mobile@Work', identifier: 'com.mobileiron', versions: ['12.10.0.0', '12.11.0.0'], required: true },
    { name: 'Ivanti Tunnel', identifier: 'com.mobileiron.tunnel', versions: ['4.12.0', '4.13.1'], required: true },
    { name: 'Microsoft Outlook', identifier: 'com.microsoft.office.outlook', versions: ['4.2436.1', '4.2440.0'] },
    { name: 'Microsoft Teams', identifier: 'com.microsoft.teams', versions: ['1416/1.0.0.2024182702', '1416/1.0.0.2024193502'] },
    { name: 'Microsoft Authenticator', identifier: 'com.azure.authenticator', versions: ['6.2409.6094', '6.2410.6749'] },
    { name: 'Chrome', identifier: 'com.android.chrome', versions: ['129.0.6668.81', '130.0.6723.58'] },
    { name: 'Slack', identifier: 'com.Slack', versions: ['24.09.10.0', '24.10.20.0'] },
    { name: 'Zoom Workplace', identifier: 'us.zoom.videomeetings', versions: ['6.2.0.23855', '6.2.5.24260'] },
  ],
  Windows: [
    { name: 'Microsoft Edge', identifier: 'Microsoft.MicrosoftEdge.Stable_8wekyb3d8bbwe', versions: ['129.0.2792.79', '130.0.2849.46'], required: true },
    { name: 'Microsoft Teams', identifier: 'MSTeams_8wekyb3d8bbwe', versions: ['24243.1309.3132.617', '24257.205.3165.2029'], required: true },
    { name: 'Microsoft 365 Apps for enterprise', identifier: 'O365ProPlusRetail', versions: ['16.0.17928.20156', '16.0.18025.20104'] },
    { name: 'Google Chrome', identifier: 'Google.Chrome', versions: ['129.0.6668.90', '130.0.6723.59'] },
    { name: 'Zoom Workplace', identifier: 'Zoom.Zoom', versions: ['6.2.0.46690', '6.2.5.48343'] },
    { name: 'Slack', identifier: 'SlackTechnologies.Slack', versions: ['4.40.126', '4.41.97'] },
    { name: '7-Zip', identifier: '7zip.7zip', versions: ['23.01', '24.08'] },
  ],
  macOS: [
    { name: 'Mobile@Work', identifier: 'com.mobileiron.mac.agent', versions: ['2.3.0', '2.4.0'], required: true },
    { name: 'Microsoft Outlook', identifier: 'com.microsoft.Outlook', versions: ['16.89', '16.90'] },
    { name: 'Microsoft Teams', identifier: 'com.microsoft.teams2', versions: ['24243.1309.3132.617', '24257.205.3165.2029'] },
    { name: 'Google Chrome', identifier: 'com.google.Chrome', versions: ['129.0.6668.90', '130.0.6723.59'] },
    { name: 'Slack', identifier: 'com.tinyspeck.slackmacgap', versions: ['4.40.126', '4.41.97'] },
    { name: 'zoom.us', identifier: 'us.zoom.xos', versions: ['6.2.0', '6.2.5'] },
  ],
};

export const EMAIL_DOMAIN = 'globex.example';

export const FIRST = [
  'Aisha', 'Ben', 'Carla', 'Daniel', 'Elena', 'Farid', 'Grace', 'Hiro', 'Ines', 'Jonas', 'Kavya', 'Liam', 'Maya', 'Noah',
  'Olga', 'Pedro', 'Quinn', 'Rosa', 'Samuel', 'Tara', 'Uma', 'Victor', 'Wen', 'Ximena', 'Yusuf', 'Zoe', 'Chloé', 'Søren',
] as const;

export const LAST = [
  'Anderson', 'Becker', 'Chen', 'Dubois', 'Evans', 'Fischer', 'García', 'Hansen', 'Ito', 'Jensen', 'Kowalski', 'López',
  'Müller', 'Nakamura', 'O’Brien', 'Patel', 'Quispe', 'Rossi', 'Schmidt', 'Tanaka', 'Usman', 'Vargas', 'Walsh', 'Young',
] as const;

/** Labels every Core has (rowType SYSTEM); criteria are in the v2 query language. */
export interface LabelSpec {
  id: number;
  name: string;
  description: string;
  /** Dynamic when set: membership is whatever matches. Static labels have explicit members. */
  criteria?: string;
  rowType: 'SYSTEM' | 'ADMIN';
}

export const SYSTEM_LABELS: LabelSpec[] = [
  // The id of All-Smartphones is -1 in the vendor's own sample; the others are chosen.
  { id: -1, name: 'All-Smartphones', description: 'Label for all devices irrespective of OS', criteria: 'common.status != "RETIRED"', rowType: 'SYSTEM' },
  { id: 2, name: 'Android', description: 'Label for all Android Phones.', criteria: 'common.platform = "Android" AND common.status != "RETIRED"', rowType: 'SYSTEM' },
  { id: 3, name: 'iOS', description: 'Label for iOS devices', criteria: 'common.platform = "iOS" AND common.status != "RETIRED"', rowType: 'SYSTEM' },
  { id: 4, name: 'macOS', description: 'Label for all macOS devices', criteria: 'common.platform = "macOS" AND common.status != "RETIRED"', rowType: 'SYSTEM' },
  { id: 5, name: 'Windows', description: 'Label for all Windows devices', criteria: 'common.platform = "Windows" AND common.status != "RETIRED"', rowType: 'SYSTEM' },
  { id: 6, name: 'Company-Owned', description: 'Label for all Company owned devices.', criteria: 'common.owner = "COMPANY"', rowType: 'SYSTEM' },
  { id: 7, name: 'Employee-Owned', description: 'Label for all Employee owned devices.', criteria: 'common.owner = "EMPLOYEE"', rowType: 'SYSTEM' },
  { id: 8, name: 'Signed-Out', description: 'Label for signed-out multi-user devices', rowType: 'SYSTEM' },
];

export const ADMIN_DYNAMIC_LABELS: LabelSpec[] = [
  { id: 101, name: 'Noncompliant', description: 'Active devices out of compliance', criteria: 'common.status = "ACTIVE" AND common.compliant = false', rowType: 'ADMIN' },
  { id: 102, name: 'Quarantined', description: 'Devices quarantined by a compliance action', criteria: 'common.quarantined = true', rowType: 'ADMIN' },
  {
    id: 103,
    name: 'Corporate iPhones',
    description: 'Company iPhones (DEP)',
    criteria: '"common.platform" = "iOS" AND "common.owner" = "COMPANY" AND common.model "starts with" "iPhone"',
    rowType: 'ADMIN',
  },
];

/** Static admin labels; members are drawn by the generator. */
export const ADMIN_STATIC_LABELS = {
  warehouse: { id: 110, name: 'Warehouse Scanners', description: 'Zebra scanners in the distribution centers' },
  sales: { id: 111, name: 'Sales Team', description: 'Devices of the sales organization' },
  executives: { id: 112, name: 'Executives', description: 'VIP devices (white-glove support)' },
  loaners: { id: 113, name: 'Loaner Pool', description: 'IT loaner devices' },
  lost: { id: 114, name: 'Lost or Stolen', description: 'Reported lost; wipe after 30 days' },
} as const;
