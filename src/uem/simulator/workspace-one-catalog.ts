/**
 * What the simulated Workspace ONE fleet is made of: platforms with their models, OS versions and
 * platform ids, app catalogs, names, the organization-group tree, and the formats of per-platform
 * identifiers (serials, UDIDs). Plain data; workspace-one-data.ts draws from it.
 */
import type { Rng } from './rng.js';
import type { OrgGroup, Platform } from './workspace-one-data.js';

export interface ModelSpec {
  name: string;
  modelId: number;
}

export interface PlatformSpec {
  platformId: number;
  /** How the friendly name spells the platform. */
  label: string;
  weight: number;
  models: ModelSpec[];
  os: string[];
  phone: boolean;
}

export const PLATFORMS: Record<Platform, PlatformSpec> = {
  Apple: {
    platformId: 2,
    label: 'iOS',
    weight: 40,
    models: [
      { name: 'iPhone 13', modelId: 1 },
      { name: 'iPhone 14 Pro', modelId: 1 },
      { name: 'iPhone 15', modelId: 1 },
      { name: 'iPhone SE (3rd generation)', modelId: 1 },
      { name: 'iPad (9th generation)', modelId: 2 },
      { name: 'iPad Air (5th generation)', modelId: 2 },
    ],
    os: ['16.7.8', '17.5.1', '17.6.1', '18.0.1', '18.1'],
    phone: true,
  },
  AppleOsX: {
    platformId: 10,
    label: 'macOS',
    weight: 10,
    models: [
      { name: 'MacBook Pro (14-inch, 2023)', modelId: 14 },
      { name: 'MacBook Air (M2, 2022)', modelId: 14 },
      { name: 'iMac (24-inch, M1, 2021)', modelId: 15 },
    ],
    os: ['13.6.7', '14.5.0', '14.6.1', '15.0.1'],
    phone: false,
  },
  Android: {
    platformId: 5,
    label: 'Android',
    weight: 25,
    models: [
      { name: 'Pixel 7', modelId: 5 },
      { name: 'Pixel 8', modelId: 5 },
      { name: 'SM-G991B', modelId: 5 },
      { name: 'SM-A536B', modelId: 5 },
      { name: 'TC52', modelId: 5 },
    ],
    os: ['12.0.0', '13.0.0', '14.0.0'],
    phone: true,
  },
  WinRT: {
    platformId: 12,
    label: 'Windows Desktop',
    weight: 25,
    models: [
      { name: 'Latitude 5440', modelId: 83 },
      { name: 'ThinkPad T14 Gen 3', modelId: 83 },
      { name: 'Surface Laptop 5', modelId: 83 },
      { name: 'HP EliteBook 840 G9', modelId: 83 },
      { name: 'Inspiron 5567', modelId: 83 },
    ],
    os: ['10.0.19045', '10.0.22621', '10.0.22631'],
    phone: false,
  },
};

export interface AppSpec {
  name: string;
  bundleId: string;
  versions: string[];
  /** Assigned to every device of the platform (the Hub is what enrolls it). */
  required?: boolean;
}

export const APPS: Record<Platform, AppSpec[]> = {
  Apple: [
    { name: 'Intelligent Hub', bundleId: 'com.air-watch.agent', versions: ['24.06', '24.08', '24.10'], required: true },
    { name: 'Microsoft Outlook', bundleId: 'com.microsoft.Office.Outlook', versions: ['4.2420.0', '4.2431.1'] },
    { name: 'Microsoft Teams', bundleId: 'com.microsoft.skype.teams', versions: ['6.14.1', '6.16.0'] },
    { name: 'Slack', bundleId: 'com.tinyspeck.chatlyio', versions: ['24.08.10', '24.09.20'] },
    { name: 'Zoom', bundleId: 'us.zoom.videomeetings', versions: ['6.1.5', '6.2.0'] },
    { name: 'Google Chrome', bundleId: 'com.google.chrome.ios', versions: ['128.0.6613.98', '129.0.6668.46'] },
    { name: 'Workspace ONE Boxer', bundleId: 'com.air-watch.boxer', versions: ['24.07.0', '24.09.1'] },
  ],
  AppleOsX: [
    { name: 'Workspace ONE Intelligent Hub', bundleId: 'com.vmware.hub.mac', versions: ['24.04.0', '24.07.1'], required: true },
    { name: 'Microsoft Outlook', bundleId: 'com.microsoft.Outlook', versions: ['16.88', '16.89'] },
    { name: 'Microsoft Teams', bundleId: 'com.microsoft.teams2', versions: ['24215.1007.3082', '24243.1309.3132'] },
    { name: 'Google Chrome', bundleId: 'com.google.Chrome', versions: ['128.0.6613.120', '129.0.6668.59'] },
    { name: 'Slack', bundleId: 'com.tinyspeck.slackmacgap', versions: ['4.39.95', '4.40.126'] },
    { name: 'zoom.us', bundleId: 'us.zoom.xos', versions: ['6.1.11', '6.2.2'] },
  ],
  Android: [
    { name: 'Intelligent Hub', bundleId: 'com.airwatch.androidagent', versions: ['24.06.0.14', '24.08.0.9'], required: true },
    { name: 'Microsoft Outlook', bundleId: 'com.microsoft.office.outlook', versions: ['4.2432.1', '4.2436.0'] },
    { name: 'Microsoft Teams', bundleId: 'com.microsoft.teams', versions: ['1416/1.0.0.2024163701', '1416/1.0.0.2024183001'] },
    { name: 'Slack', bundleId: 'com.Slack', versions: ['24.08.10.0', '24.09.20.0'] },
    { name: 'Zoom', bundleId: 'us.zoom.videomeetings', versions: ['6.1.8.22760', '6.2.0.23364'] },
    { name: 'Chrome', bundleId: 'com.android.chrome', versions: ['128.0.6613.127', '129.0.6668.70'] },
  ],
  WinRT: [
    { name: 'Workspace ONE Intelligent Hub Installer', bundleId: '{4c8d6bb5-2b4d-4b83-8b7e-3c7a5f0f5e21}', versions: ['24.6.0.4', '24.10.0.7'], required: true },
    { name: 'Microsoft 365 Apps for enterprise - en-us', bundleId: 'O365ProPlusRetail - en-us', versions: ['16.0.17830.20166', '16.0.17928.20156'] },
    { name: 'Google Chrome', bundleId: '{1b6e9a30-9c4d-3c52-9a1e-0f3b2d6c1a77}', versions: ['128.0.6613.120', '129.0.6668.71'] },
    { name: 'Zoom Workplace (64-bit)', bundleId: '{7b0f4a6c-7f9b-4ba8-8e1f-2a1f2e0f7c11}', versions: ['6.1.10.45036', '6.2.3.46322'] },
    { name: '7-Zip 23.01 (x64)', bundleId: '7-Zip', versions: ['23.01.00.0', '24.08.00.0'] },
  ],
};

export const FIRST = ['Olivia', 'Liam', 'Emma', 'Noah', 'Ava', 'Lucas', 'Mia', 'Ethan', 'Sofia', 'Mateo', 'Amelia', 'Leo', 'Chloe', 'Aarav', 'Hana', 'Kenji', 'Fatima', 'Omar', 'Ingrid', 'Lars', 'Priya', 'Rahul', 'Zoe', 'Diego', 'Yara', 'Tomasz', 'Nadia', 'Samuel', 'Grace', 'Mohammed', 'Elena', 'Jonas'];
export const LAST = ['Smith', 'Garcia', 'Chen', 'Nakamura', 'Okafor', 'Novak', 'Rossi', 'Müller', 'Haddad', 'Kowalski', 'Patel', 'Johansson', 'Dubois', 'Silva', 'Cohen', 'Kim', 'Nguyen', 'Fischer', 'Martin', 'Ahmed', 'Larsen', 'Ivanova', 'Brown', 'Lopez'];

/** The tenant's organization groups; devices of each ownership land in the groups that fit it. */
export const OG_TREE: Array<{ id: number; name: string; groupId: string; type: OrgGroup['type']; parent: number; country: string }> = [
  { id: 570, name: 'Acme Corp', groupId: 'acme', type: 'Customer', parent: 7, country: 'United States' },
  { id: 571, name: 'Corporate', groupId: 'acme-corp', type: 'Container', parent: 570, country: 'United States' },
  { id: 574, name: 'Engineering', groupId: 'acme-eng', type: 'Container', parent: 571, country: 'United States' },
  { id: 575, name: 'Finance', groupId: 'acme-fin', type: 'Container', parent: 571, country: 'United States' },
  { id: 572, name: 'Sales', groupId: 'acme-sales', type: 'Container', parent: 570, country: 'United Kingdom' },
  { id: 573, name: 'Retail Stores', groupId: 'acme-retail', type: 'Region', parent: 570, country: 'United States' },
  { id: 576, name: 'Store 001', groupId: 'acme-store-001', type: 'Container', parent: 573, country: 'United States' },
  { id: 577, name: 'Store 002', groupId: 'acme-store-002', type: 'Container', parent: 573, country: 'United States' },
  { id: 578, name: 'BYOD', groupId: 'acme-byod', type: 'Container', parent: 570, country: 'United States' },
];
/** The customer group's parent (Global): outside the tenant, so never listed. */
export const GLOBAL_OG = { id: 7, uuid: '34ec0b4c-0f63-4d8c-9e29-2ad5f6b1c7a1' };

export const EMAIL_DOMAIN = 'acme.example';

// ---- identifier formats, per platform (shapes seen in real fleets; values are random) -------------

export function serialFor(rng: Rng, p: Platform): string {
  const AZ09 = 'ABCDEFGHJKLMNPQRSTUVWXYZ0123456789';
  switch (p) {
    case 'Apple':
    case 'AppleOsX':
      return rng.chars(10, AZ09) + rng.chars(2, 'ABCDEFGHJKLMNPQRSTUVWXYZ');
    case 'Android':
      return `R5${rng.chars(1, 'CDFGJKMNPQRSTVWXY')}${rng.chars(8, AZ09)}`;
    case 'WinRT':
      return `${rng.pick(['5CG', 'PF', 'CND', 'DLT'])}${rng.chars(7, AZ09)}`;
  }
}

export function udidFor(rng: Rng, p: Platform): string {
  switch (p) {
    case 'Apple':
      return `00008${rng.pick(['101', '110', '120'])}-00${rng.chars(14, '0123456789ABCDEF')}`;
    case 'AppleOsX':
      return rng.uuid().toUpperCase();
    case 'Android':
      return rng.hex(32);
    case 'WinRT':
      return rng.chars(32, '0123456789ABCDEF');
  }
}

export function reportedName(rng: Rng, p: Platform, user: string, model: string): string {
  switch (p) {
    case 'Apple':
      return `${user}'s ${model.startsWith('iPad') ? 'iPad' : 'iPhone'}`;
    case 'AppleOsX':
      return `${user}-mac`;
    case 'Android':
      return model;
    case 'WinRT':
      return `ACME-${rng.pick(['LT', 'DT'])}-${rng.chars(5, '0123456789')}`;
  }
}
