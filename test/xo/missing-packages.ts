/**
 * What `npm install` of `@xen-orchestra/backups` needs and the registry this project installs from
 * does not have (checked 2026-12-01 against its mirror of registry.npmjs.org; 0.74.2 is the only
 * version of `@xen-orchestra/backups` it holds), found by installing it in a scratch folder one
 * 404 or "no matching version" at a time, and how test/xo/package.json's `overrides` stand in for
 * each: a shim of ours (test/xo/shims, see its README) or the version the registry has. The
 * README's table and the skip message of `npm run test:xo` are made from this list.
 */
export interface MissingPackage {
  readonly name: string
  /** the range asked for */
  readonly range: string
  /** who asks for it (package@version) */
  readonly wantedBy: readonly string[]
  /** what the registry has instead */
  readonly available: string
  /** what test/xo installs in its place */
  readonly standIn: string
}

export const MISSING_PACKAGES: readonly MissingPackage[] = [
  {
    name: '@vates/cached-dns.lookup',
    range: '^1.0.0',
    wantedBy: ['@xen-orchestra/backups@0.74.2'],
    available: 'none (404)',
    standIn: 'shim',
  },
  {
    name: '@vates/disposable',
    range: '^0.1.6',
    wantedBy: ['@xen-orchestra/backups@0.74.2'],
    available: 'none (404)',
    standIn: 'shim',
  },
  {
    name: '@vates/fuse-vhd',
    range: '^2.1.3',
    wantedBy: ['@xen-orchestra/backups@0.74.2'],
    available: 'none (404)',
    standIn: 'shim (mount throws: file restore only)',
  },
  {
    name: '@vates/parse-duration',
    range: '^0.1.1',
    wantedBy: ['@xen-orchestra/backups@0.74.2', '@xen-orchestra/xapi@8.10.5'],
    available: 'none (404)',
    standIn: 'shim',
  },
  {
    name: '@vates/task',
    range: '^0.7.0 / 0.7.0',
    wantedBy: ['@xen-orchestra/backups@0.74.2', '@xen-orchestra/xapi@8.10.5', '@xen-orchestra/backup-archive@1.1.2'],
    available: 'none (404)',
    standIn: 'shim',
  },
  {
    name: '@vates/types',
    range: '^2.0.1',
    wantedBy: ['@xen-orchestra/backups@0.74.2'],
    available: 'none (404)',
    standIn: 'shim (VM_POWER_STATE)',
  },
  {
    name: 'vhd-lib',
    range: '^4.16.1',
    wantedBy: ['@xen-orchestra/backups@0.74.2', '@xen-orchestra/xapi@8.10.5', '@xen-orchestra/backup-archive@1.1.2'],
    available: '4.15.0 (and 0.x)',
    standIn: '4.15.0',
  },
  {
    name: 'xen-api',
    range: '^4.9.0 / ^5.0.0',
    wantedBy: [
      '@xen-orchestra/backups@0.74.2',
      '@xen-orchestra/xapi@8.10.5 (peer)',
      '@vates/nbd-client@3.6.0 (^5.0.0)',
    ],
    available: '4.7.6 (and 0.x)',
    standIn: '4.7.6',
  },
  {
    name: '@xen-orchestra/async-map',
    range: '^0.1.5',
    wantedBy: ['@vates/nbd-client@3.6.0'],
    available: '0.1.4',
    standIn: '0.1.4',
  },
  {
    name: 'xo-remote-parser',
    range: '^0.10.1',
    wantedBy: ['@xen-orchestra/fs@4.9.3'],
    available: '0.5.0 and older',
    standIn: '0.5.0',
  },
  {
    name: 'xo-common',
    range: '^0.11.0',
    wantedBy: ['@xen-orchestra/xapi@8.10.5'],
    available: '0.9.0 and older',
    standIn: '0.9.0',
  },
  {
    name: '@vates/diff',
    range: '^0.1.0',
    wantedBy: ['vhd-lib@4.15.0 (the version test/xo installs)'],
    available: 'none (404)',
    standIn: 'shim (throws: VHD stream validation only)',
  },
  {
    name: '@vates/stream-reader',
    range: '^0.1.0',
    wantedBy: ['vhd-lib@4.15.0 (the version test/xo installs)'],
    available: 'none (404)',
    standIn: 'shim (throws: VHD stream validation only)',
  },
]

/** One line per package, as the skip message and the README give them. */
export function missingPackagesText(): string {
  return MISSING_PACKAGES.map(
    p =>
      `${p.name}@${p.range} (wanted by ${p.wantedBy.join(', ')}; registry has ${p.available}; test/xo installs ${p.standIn})`,
  ).join('; ')
}
