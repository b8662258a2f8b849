/**
 * The update module (binding.md §9), Mender's update-module style: `MODULE VERB PACKAGE`, argv only, its exit code
 * and (for `install`) its stdout meaning what the contract says. Run by the agent itself (`direct`, and `verify`
 * always); the root-side installer of `spool` runs `check` and `install` with the same meanings.
 */
import { runProgram } from '../objects/run.ts'
import { FUMO_RESULT, type FumoResult } from './result-codes.ts'

export type ModuleVerb = 'check' | 'install' | 'verify'

export interface ModuleOutcome {
  exitCode: number
  /** `install` printed `restart` or `reboot`: its result waits for `verify` at the next start. */
  restart: boolean
}

/** What a module's stdout says of a restart: a line that is `restart` or `reboot`. */
export const asksRestart = (stdout: string): boolean => /^(restart|reboot)$/m.test(stdout.replace(/\r/g, '').trim())

export async function runModule(module: string, verb: ModuleVerb, pkg: string, timeoutMs: number, signal?: AbortSignal): Promise<ModuleOutcome> {
  const run = await runProgram([module, verb, pkg], { timeoutMs, maxBytes: 4096, ...(signal !== undefined && { signal }) })
  // Killed (timeout) counts as failed: -1 is no exit code a module gives.
  const exitCode = run.exitCode ?? -1
  return { exitCode, restart: verb === 'install' && exitCode === 0 && asksRestart(Buffer.from(run.stdout).toString('utf8')) }
}

/** binding.md §9: `check` 0 acceptable, 3 device mismatch (403), anything else not acceptable (405). */
export const checkResult = (exitCode: number): FumoResult | undefined =>
  exitCode === 0 ? undefined : exitCode === 3 ? FUMO_RESULT.DEVICE_MISMATCH : FUMO_RESULT.NOT_ACCEPTABLE

/** `install` and `verify`: 0 updated (200), anything else failed (410). */
export const installResult = (exitCode: number): FumoResult => (exitCode === 0 ? FUMO_RESULT.SUCCESSFUL : FUMO_RESULT.UPDATE_FAILED)
