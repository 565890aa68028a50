/**
 * How many 2 MiB blocks of a disk differ from a snapshot of it, read from the host's own delta
 * export (`GET /export_raw_vdi?base=`) — only its header and block table, never the blocks, as
 * XO 6.5 checks a replica before updating it in place. This is the honest test of "unchanged
 * since the snapshot": the host's storage says which blocks were written since, whatever wrote them.
 */
import { VhdError } from '../errors.js'
import { BAT_UNUSED, readVhd } from '../vhd/index.js'
import type { XapiClient } from '../xapi/client.js'
import { exportVdi } from '../xapi/transfer.js'
import type { Ref } from '../xapi/types.js'

/** The number of blocks present in the delta export of `vdi` against `base`. */
export async function countChangedBlocks(
  client: XapiClient,
  vdi: Ref<'VDI'>,
  base: Ref<'VDI'>,
  signal?: AbortSignal,
): Promise<number> {
  const exported = await exportVdi(client, vdi, {
    format: 'vhd',
    base,
    ...(signal === undefined ? {} : { signal }),
  })
  let changed: number | undefined
  try {
    for await (const item of readVhd(exported.stream, signal === undefined ? {} : { signal })) {
      if (item.kind !== 'bat') continue
      changed = item.bat.filter(entry => entry !== BAT_UNUSED).length
      // Leaving the loop destroys the stream: the blocks themselves are never read.
      if (changed > 0) break
    }
  } finally {
    // A stream cut on purpose fails the export; the count is already known.
    if (changed === undefined || changed === 0) await exported.done
    else await exported.done.catch(() => undefined)
  }
  // readVhd yields the table or throws; this guards a reader that would one day do neither
  if (changed === undefined)
    throw new VhdError('VHD_TRUNCATED', `the delta export of VDI ${vdi} ended before its block table`, 0)
  return changed
}
