import { describe, expect, it } from 'vitest'
import { translateDropInArgs } from './xen-cr-seed.js'

describe('xen-cr-seed argument translation', () => {
  it('maps xo-cr-seed six positionals onto xen-cr seed flags, keeping the URLs as given', () => {
    expect(
      translateDropInArgs(['https://root:p%40ss@a', 'S', 'b.example', 'T', 'J', 'K'], {
        allowUnauthorized: true,
        verify: 'sample',
      }),
    ).toEqual([
      'seed',
      '--source',
      'https://root:p%40ss@a',
      '--snapshot',
      'S',
      '--target',
      'b.example',
      '--target-vm',
      'T',
      '--job',
      'J',
      '--schedule',
      'K',
      '--allow-unauthorized',
      '--verify=sample',
      '--drop-in',
    ])
  })

  it('maps the four-uuid form without pools, passes global flags first, and rejects other counts', () => {
    expect(translateDropInArgs(['S', 'T', 'J', 'K'], { config: 'c.json', json: true, verify: 'full' })).toEqual([
      '--config',
      'c.json',
      '--json',
      'seed',
      '--snapshot',
      'S',
      '--target-vm',
      'T',
      '--job',
      'J',
      '--schedule',
      'K',
      '--verify=full',
      '--drop-in',
    ])
    expect(translateDropInArgs(['S', 'T', 'J'], {})).toMatch(/^expected 6 arguments/)
  })
})
