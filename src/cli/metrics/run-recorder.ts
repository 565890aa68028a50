import { resolve } from 'node:path'
import type { PassEvent, VmResult } from '../../replication/events.js'
import type { CliContext } from '../context.js'
import { readMetricsSamples, writeMetricsFile } from './metrics-file.js'
import { runMetricsText, type JobRun } from './run-metrics.js'

/** One job's pass as it goes: feed it the pass's events, then say how it ended. */
export interface PassRecording {
  event(event: PassEvent): void
  /** the pass returned (`ok`: no VM failed) or threw (`ok` false) */
  end(ok: boolean): void
}

/** Collects the passes of one `run` invocation for `--metrics-file`. */
export class RunRecorder {
  private readonly runs: JobRun[] = []

  constructor(private readonly now: () => Date) {}

  /** `complete`: the pass covers the whole job (no `--vm`). */
  start(job: { readonly id: string; readonly name: string }, complete: boolean): PassRecording {
    const results: { result: VmResult; endedAt: Date }[] = []
    let reached = false
    return {
      event: event => {
        if (event.kind === 'vm-done') results.push({ result: event.result, endedAt: this.now() })
        if (event.kind === 'pass-done') reached = true
      },
      end: ok => {
        // a pass that stopped before its end has not reported every VM of the job
        this.runs.push({
          job: { id: job.id, name: job.name },
          ok,
          at: this.now(),
          results,
          complete: complete && reached,
        })
      },
    }
  }

  /** Records a job that could not run (its pool unreachable), unless its pass was recorded already. */
  failed(job: { readonly id: string; readonly name: string }): void {
    if (this.runs.some(run => run.job.id === job.id)) return
    this.runs.push({ job: { id: job.id, name: job.name }, ok: false, at: this.now(), results: [], complete: false })
  }

  /** Rewrites `file` with this invocation's passes, carrying over the jobs that did not run. */
  async write(context: CliContext, file: string): Promise<void> {
    const path = resolve(context.io.cwd, file)
    const jobs = new Map((await (await context.jobStore()).list()).map(job => [job.id, job.name]))
    const text = await runMetricsText(await readMetricsSamples(path), this.runs, jobs, this.now())
    await writeMetricsFile(path, text)
    context.output.emit({ kind: 'debug', message: `metrics written to ${path}` })
  }
}
