/**
 * `npm run demo` as a first-time user reads it under a pipe: every step works, and none of the
 * oddities a new user tripped over comes back.
 */
import { describe, expect, it } from 'vitest'
import { runDemo } from '../../src/cli/demo.js'
import { CaptureStream } from '../helpers/capture-stream.js'

describe('npm run demo', () => {
  it('runs a full and a delta pass and lists them, with nothing that misleads', async () => {
    const stdout = new CaptureStream()
    const stderr = new CaptureStream()
    const started = Date.now()
    expect(await runDemo({ stdout, stderr })).toBe(0)
    const ended = Date.now()
    const text = stdout.text + stderr.text

    // a crontab line would point at the temporary folder the demo removes
    expect(text).not.toMatch(/^crontab:/m)
    expect(text).toMatch(/no crontab line: .*removes on exit/)

    // the second pass is logged now, not an hour ahead (the first is dated an hour back, and says so)
    const stamps = [...text.matchAll(/^(\d{4}-\d{2}-\d{2}T[\d:.]+Z) /gm)].map(m => Date.parse(m[1]!))
    expect(stamps.length).toBeGreaterThan(10)
    for (const stamp of stamps) expect(stamp).toBeLessThanOrEqual(ended)
    expect(Math.max(...stamps)).toBeGreaterThanOrEqual(started)
    expect(text).toMatch(/the first pass, dated an hour ago/)

    // the VLAN with no match on the target is mapped by the job, not warned about at every pass
    expect(text.match(/NETWORK_MAPPED_TO_DEFAULT\]/g) ?? []).toHaveLength(0)
    expect(text).toMatch(/--network-map [0-9a-f-]{36}=[0-9a-f-]{36}/)

    // the unwritten disk's few KiB are explained where they are shown
    expect(text).toMatch(/db-01: disk 1 delta, 3 KiB of 3 KiB \(100 %\): no block changed/)
    expect(text).toMatch(/Z ok web-01: delta, 4\.00 MiB sent in/)
    expect(text).toMatch(/Z 2 of 2 VMs replicated\n[\s\S]*Z 2 of 2 VMs replicated\n/)
    expect(stdout.text).toMatch(/web-01 - demo - \(\d{8}T\d{6}Z\) +[0-9a-f-]{36} +Replica storage .* delta/)
  })
})
