/**
 * A log is read by `grep`, by cron's mail and by terminals set to anything: xen-cr's own
 * symbols become ASCII words there. Names of VMs, SRs and jobs are the user's and pass unchanged.
 */
const ASCII: Readonly<Record<string, string>> = {
  '✓': 'ok',
  '✗': 'FAILED',
  '…': '...',
  '→': '->',
  '←': '<-',
  '—': '-',
  '–': '-',
  '×': 'x',
  '·': '-',
  '≥': '>=',
  '≤': '<=',
  '‘': "'",
  '’': "'",
  '“': '"',
  '”': '"',
}

const SYMBOLS = new RegExp(`[${Object.keys(ASCII).join('')}]`, 'gu')

export function toAscii(line: string): string {
  return line.replace(SYMBOLS, symbol => ASCII[symbol] ?? symbol)
}
