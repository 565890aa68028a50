import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A fresh temporary directory for one test; `remove()` deletes it. Each test gets its own so
 * that no test depends on another's state.
 */
export async function makeTempDir(prefix = 'xen-cr-test-'): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, remove: () => rm(path, { recursive: true, force: true }) }
}
