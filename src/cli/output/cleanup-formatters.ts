import type { CleanupEvent, Leftover } from '../../replication/leftovers.js'
import type { FormattersOf } from './formatter.js'

const what = (l: Leftover): string => `${l.kind} ${l.name} (${l.uuid}) on the ${l.pool} pool`

/** `xen-cr cleanup`: what was left, what goes, what stays and why. */
export const cleanupFormatters: FormattersOf<CleanupEvent> = {
  'cleanup-plan': {
    class: 'result',
    format: (e, style) => {
      const verb = e.dryRun ? 'would remove' : 'remove'
      return [
        ...e.remove.map(l => `${verb} ${what(l)}: ${l.why}`),
        ...e.keep.map(l => `${style.yellow('keep')} ${what(l)}: ${l.why}; ${l.reason}`),
        e.remove.length === 0 && e.keep.length === 0
          ? `job "${e.job.name}": nothing left by interrupted passes`
          : `job "${e.job.name}": ${e.remove.length} object(s) ${e.dryRun ? 'would be removed (dry run: nothing removed)' : 'to remove'}${e.keep.length === 0 ? '' : `, ${e.keep.length} kept`}`,
      ]
    },
  },
  'cleanup-removed': {
    class: 'info',
    format: e => [`removed ${what(e.item)}`],
  },
  'cleanup-done': {
    class: 'result',
    format: (e, style) => [
      `job "${e.job.name}": ${e.removed} object(s) removed${e.failed === 0 ? '' : `, ${style.red(`${e.failed} failed`)}`}${e.kept === 0 ? '' : `, ${e.kept} kept`}`,
    ],
  },
}
