import { startLab, type Lab, type LabPoolInfo, type StartLabOptions } from '../../src/lab/start.js'
import { XapiClient, type XapiConnectOptions } from '../../src/xapi/client.js'
import { makeTempDir } from './tmp.js'

/**
 * A lab in a fresh temporary directory of its own; `stop()` stops it and removes the directory
 * (so a test file's teardown is one call, and `lab?.stop()` is safe if the start failed).
 */
export async function startTempLab(
  spec: StartLabOptions['spec'],
  options: Omit<StartLabOptions, 'spec' | 'dir'> = {},
): Promise<Lab> {
  const tmp = await makeTempDir()
  let lab: Lab
  try {
    lab = await startLab({ ...options, ...(spec === undefined ? {} : { spec }), dir: tmp.path })
  } catch (error) {
    await tmp.remove()
    throw error
  }
  return {
    ...lab,
    stop: async () => {
      try {
        await lab.stop()
      } finally {
        await tmp.remove()
      }
    },
  }
}

/** The pool named `name` of a lab (the test's own spec names it, so it is there). */
export function labPool(lab: Lab, name: string): LabPoolInfo {
  const pool = lab.pools.find(p => p.name === name)
  if (pool === undefined) throw new Error(`the lab has no pool ${name}`)
  return pool
}

/** A typed client logged in to a lab pool as its first user. */
export function connectLabPool(pool: LabPoolInfo, options: Partial<XapiConnectOptions> = {}): Promise<XapiClient> {
  return XapiClient.connect({ url: pool.url, user: pool.user, password: pool.password, ...options })
}
