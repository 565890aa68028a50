/** The seed's refusals: every check that fails before anything is written (exit 5). */
import { ValidationError } from '../../errors.js'

/** Stable codes of every seed refusal (exit 5). */
export type SeedRefusalCode =
  | 'SEED_ID_INVALID'
  | 'SEED_SNAPSHOT_NOT_FOUND'
  | 'SEED_NOT_A_SNAPSHOT'
  | 'SEED_SOURCE_VM_GONE'
  | 'SEED_VM_NOT_IN_JOB'
  | 'SEED_TARGET_NOT_FOUND'
  | 'SEED_TARGET_NOT_A_VM'
  | 'SEED_TARGET_NOT_HALTED'
  | 'SEED_TARGET_IS_SOURCE'
  | 'SEED_NO_DISKS'
  | 'SEED_DISKS_MISMATCH'
  | 'SEED_DISKS_ON_SEVERAL_SRS'
  | 'SEED_SR_NOT_IN_JOB'
  | 'SEED_SNAPSHOT_CLAIMED'
  | 'SEED_TARGET_CLAIMED'
  | 'SEED_ALREADY_REPLICATED'
  | 'SEED_CONTENT_MISMATCH'
  | 'SEED_MANIFEST_INVALID'
  | 'SEED_FILE_MISMATCH'
  | 'SEED_VM_NOT_FOUND'
  | 'SEED_OUT_NOT_EMPTY'

/** A seed refused before anything was written. */
export class SeedRefusal extends ValidationError {
  constructor(code: SeedRefusalCode, message: string) {
    super(code, message)
  }
}
