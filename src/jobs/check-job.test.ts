import { describe, expect, it } from 'vitest'
import { ValidationError } from '../errors.js'
import { buildJob, type NewJobInput } from './build-job.js'
import { checkJob, type PoolInventory } from './check-job.js'

const uuid = (n: number) => `0a1b2c3d-0000-4000-8000-${String(n).padStart(12, '0')}`
const source: PoolInventory = {
  vms: [
    { uuid: uuid(1), name: 'web', tags: ['cr'], kind: 'vm' },
    { uuid: uuid(2), name: 'tpl', tags: [], kind: 'template' },
    { uuid: uuid(3), name: 'dom0', tags: [], kind: 'control-domain' },
  ],
  srs: [],
  networks: [{ uuid: uuid(10), name: 'net0' }],
  defaultSr: undefined,
}
const target: PoolInventory = {
  vms: [],
  srs: [
    { uuid: uuid(20), name: 'local', contentType: 'user' },
    { uuid: uuid(21), name: 'iso', contentType: 'iso' },
  ],
  networks: [{ uuid: uuid(30), name: 'net0' }],
  defaultSr: uuid(20),
}

function job(input: Partial<NewJobInput>) {
  return buildJob(
    { name: 'n', source: 's', target: 't', interval: '1h', vms: [uuid(1)], ...input },
    { retention: 1, concurrency: 1, fullInterval: 0 },
    new Date(),
  )
}

function refusal(input: Partial<NewJobInput>, sourcePool = source, targetPool = target): string {
  try {
    checkJob(job(input), sourcePool, targetPool)
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError)
    return (error as ValidationError).code
  }
  throw new Error('expected a ValidationError')
}

describe('checkJob', () => {
  it('accepts a valid job and fills in the default SR', () => {
    const checked = checkJob(job({ networkMap: [`${uuid(10)}=${uuid(30)}`] }), source, target)
    expect(checked.srs).toEqual([uuid(20)])
  })

  it('keeps explicit SRs', () => {
    expect(checkJob(job({ srs: [uuid(20)] }), source, { ...target, defaultSr: undefined }).srs).toEqual([uuid(20)])
  })

  it.each<[string, Partial<NewJobInput>, string]>([
    ['an unknown VM', { vms: [uuid(9)] }, 'VM_NOT_FOUND'],
    ['a template', { vms: [uuid(2)] }, 'VM_NOT_REPLICABLE'],
    ['the control domain', { vms: [uuid(3)] }, 'VM_NOT_REPLICABLE'],
    ['an unknown SR', { srs: [uuid(29)] }, 'SR_NOT_FOUND'],
    ['an ISO SR', { srs: [uuid(21)] }, 'SR_NOT_USABLE'],
    ['an unknown source network', { networkMap: [`${uuid(11)}=${uuid(30)}`] }, 'NETWORK_NOT_FOUND'],
    ['an unknown target network', { networkMap: [`${uuid(10)}=${uuid(31)}`] }, 'NETWORK_NOT_FOUND'],
  ])('refuses %s', (_label, input, code) => {
    expect(refusal(input)).toBe(code)
  })

  it('refuses when there is no SR to use', () => {
    expect(refusal({}, source, { ...target, defaultSr: undefined })).toBe('NO_DEFAULT_SR')
  })

  it('only warns about a tag no VM has yet', () => {
    const warnings: string[] = []
    checkJob(job({ vms: [], tags: ['cr', 'other'] }), source, target, (code, message) =>
      warnings.push(`${code}: ${message}`),
    )
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/^TAG_MATCHES_NO_VM: .*"other"/)
  })
})
