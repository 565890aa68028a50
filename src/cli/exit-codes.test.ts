import { CommanderError } from 'commander'
import { describe, expect, it } from 'vitest'
import {
  AbortedError,
  ConfigError,
  ConnectionError,
  LeaseError,
  OperationError,
  UsageError,
  ValidationError,
  VhdError,
  XapiError,
} from '../errors.js'
import { ExitCode, exitCodeFor, worstExitCode } from './exit-codes.js'

describe('exitCodeFor', () => {
  it.each([
    ['UsageError', new UsageError('MISSING_OPTION', 'x'), 2],
    ['ConfigError', new ConfigError('CONFIG_INVALID', 'x'), 2],
    ['LeaseError', new LeaseError('JOB_RUNNING', 'x'), 3],
    ['ConnectionError', new ConnectionError('POOL_UNREACHABLE', 'x'), 4],
    ['ValidationError', new ValidationError('JOB_EXISTS', 'x'), 5],
    ['OperationError', new OperationError('TRANSFER_STALLED', 'x'), 1],
    ['XapiError', new XapiError('VM_BAD_POWER_STATE', [], 'VM.start'), 1],
    ['VhdError', new VhdError('VHD_TRUNCATED', 'x', 0), 1],
    ['AbortedError', new AbortedError(), 1],
    ['a plain Error', new Error('bug'), 1],
    ['a thrown string', 'bug', 1],
    ['a commander usage error', new CommanderError(1, 'commander.unknownOption', 'x'), 2],
    ['commander --help', new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'), 0],
  ])('maps %s to %i', (_label, error, code) => {
    expect(exitCodeFor(error)).toBe(code)
  })

  it('keeps the table of DESIGN.md', () => {
    expect(ExitCode).toEqual({ ok: 0, failed: 1, usage: 2, lease: 3, connection: 4, validation: 5 })
  })

  it('lets any failure beat success when outcomes combine', () => {
    expect(worstExitCode(ExitCode.ok, ExitCode.ok)).toBe(0)
    expect(worstExitCode(ExitCode.ok, ExitCode.failed)).toBe(1)
    expect(worstExitCode(ExitCode.failed, ExitCode.ok)).toBe(1)
  })

  // run --due with one job leased elsewhere and another's VM failed exited 3, which cron and the
  // systemd unit (SuccessExitStatus=3) took for "nothing done": the failure went unseen.
  it('lets any other outcome beat "leased elsewhere", in either order', () => {
    expect(worstExitCode(ExitCode.lease, ExitCode.failed)).toBe(1)
    expect(worstExitCode(ExitCode.failed, ExitCode.lease)).toBe(1)
    expect(worstExitCode(ExitCode.lease, ExitCode.connection)).toBe(4)
    expect(worstExitCode(ExitCode.lease, ExitCode.ok)).toBe(3)
    expect(worstExitCode(ExitCode.ok, ExitCode.lease)).toBe(3)
  })
})
