import { describe, expect, it } from 'vitest'
import { buildJob } from './build-job.js'
import { checkEveryMinutes, crontabLine, crontabQuote } from './crontab.js'

const defaults = { retention: 1, concurrency: 1, fullInterval: 0 }
const job = (schedule: { interval?: string; cron?: string }) =>
  buildJob({ name: 'n', source: 's', target: 't', allVms: true, ...schedule }, defaults, new Date())
const command = {
  node: '/usr/bin/node',
  script: '/opt/xen-cr/bin/xen-cr.js',
  configFile: '/etc/xen-cr/config.json',
  jobsFile: '/var/lib/xen cr/jobs.json',
}

describe('crontabLine', () => {
  it('checks an interval job a few times per interval with absolute paths and run --due', () => {
    expect(crontabLine(job({ interval: '1h' }), command)).toBe(
      "*/15 * * * * /usr/bin/node /opt/xen-cr/bin/xen-cr.js --config /etc/xen-cr/config.json --jobs-file '/var/lib/xen cr/jobs.json' run --due",
    )
    expect(crontabLine(job({ interval: '15m' }), { node: 'node', script: 'x.js' })).toBe(
      '*/3 * * * * node x.js run --due',
    )
  })

  it('uses the cron expression of a cron job', () => {
    expect(crontabLine(job({ cron: '30 2 * * 1-5' }), { node: 'node', script: 'x.js' })).toBe(
      '30 2 * * 1-5 node x.js run --due',
    )
  })

  it('picks a step that divides the hour', () => {
    expect([2, 4, 8, 12, 20, 40, 60, 1440].map(minutes => checkEveryMinutes(minutes * 60_000))).toEqual([
      1, 1, 2, 3, 5, 10, 15, 15,
    ])
  })

  it('quotes for sh and escapes % for cron', () => {
    expect(crontabQuote('/a/b.json')).toBe('/a/b.json')
    expect(crontabQuote("it's")).toBe("'it'\\''s'")
    expect(crontabQuote('/a/50%.json')).toBe("'/a/50\\%.json'")
  })
})
