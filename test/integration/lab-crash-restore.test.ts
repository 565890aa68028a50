/**
 * A lab that dies without stopping (SIGKILL, a crash) restarts with what it had saved: the files
 * of a running lab's directory, copied as they are at one instant, restore the changes made
 * through the API since it started (they are in the database's journal, which only a stop or a
 * compaction folds into db.json). Without the journal being replayed the copy would come back
 * with the VM's old name and no snapshot.
 */
import { cp, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, expect, it } from 'vitest'
import { readDatabase } from '../../src/lab/persistence.js'
import { startLab, type Lab } from '../../src/lab/start.js'
import { makeTempDir } from '../helpers/tmp.js'
import { ok } from './lab-rpc.js'

let labs: Lab[] = []
let tmp: { path: string; remove: () => Promise<void> } | undefined

afterEach(async () => {
  for (const lab of labs) await lab.stop()
  labs = []
  await tmp?.remove()
})

it('restores the changes a running lab had saved when its directory is restarted without a stop', async () => {
  tmp = await makeTempDir()
  const dir = join(tmp.path, 'running')
  const first = await startLab({
    dir,
    spec: { pools: [{ name: 'p', srs: [{ name: 'sr' }], vms: [{ name: 'vm', disks: [{ size: '2 MiB' }] }] }] },
  })
  labs.push(first)
  const pool = first.pools[0]!
  const session = await ok<string>(pool.url, 'session.login_with_password', pool.user, pool.password)
  const [vm] = await ok<string[]>(pool.url, 'VM.get_by_name_label', session, 'vm')
  const snapshot = await ok<string>(pool.url, 'VM.snapshot', session, vm, 'before the crash')
  await ok(pool.url, 'VM.set_name_label', session, vm, 'renamed')
  await ok(pool.url, 'VM.add_to_other_config', session, vm, 'xo:backup:job', 'job-1')

  // The lab saves shortly after changes: wait (polling, up to a minute) until its files hold them.
  const poolDir = join(dir, 'pools', 'p')
  const saved = async (): Promise<boolean> => {
    const dump = await readDatabase(join(poolDir, 'db.json'))
    const record = dump?.objects['VM']?.[vm!]
    return (
      record?.['name_label'] === 'renamed' &&
      (record['other_config'] as Record<string, string>)['xo:backup:job'] === 'job-1'
    )
  }
  const deadline = Date.now() + 60_000
  while (!(await saved())) {
    expect(Date.now()).toBeLessThan(deadline)
    await sleep(50)
  }
  // the changes went to the journal, not into a rewritten db.json
  expect((await readdir(poolDir)).filter(name => name.endsWith('.journal'))).toHaveLength(1)

  // The directory as a crash would leave it (the running lab's lock aside), then the lab stops.
  const crashed = join(tmp.path, 'crashed')
  await cp(dir, crashed, { recursive: true, filter: source => !source.endsWith('lab.lock') })
  await first.stop()
  labs = []

  const second = await startLab({ dir: crashed })
  labs.push(second)
  expect(second.restored).toBe(true)
  const again = second.pools[0]!
  expect(await ok(again.url, 'VM.get_name_label', session, vm)).toBe('renamed')
  expect(await ok(again.url, 'VM.get_other_config', session, vm)).toMatchObject({ 'xo:backup:job': 'job-1' })
  expect(await ok(again.url, 'VM.get_snapshots', session, vm)).toEqual([snapshot])
  expect(await ok(again.url, 'VM.get_name_label', session, snapshot)).toBe('before the crash')
})
