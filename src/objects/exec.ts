/**
 * An object's `exec.command` (binding.md §8). Synchronous: awaited, 200 / 500 / 408. Asynchronous (the default,
 * OMA DM 1.2 as FUMO 10.2.1 describes): 202 at once, and the end reported to the server that sent the Exec in a
 * Generic Alert (1226) with the Exec's Correlator, the node as its Source, Meta/Format `int` and the status as Data.
 *
 * Each asynchronous run is noted in the agent state before the program starts, and the note goes in the same save
 * that queues its alert. A note found at the next start is a run the agent did not see end: a device restart
 * when the object reboots it (200 when the boot id changed, 500 when it did not), else 500. So every Exec answered
 * 202 gets exactly one alert, whatever happens in between.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from '../log.ts'
import type { AgentState, JsonValue } from '../session/agent-state.ts'
import type { SessionManager } from '../session/manager.ts'
import type { ExternalCall, ExternalValue } from '../tree/external.ts'
import { run, runFailure } from './backing.ts'
import type { ObjectSpec } from './spec.ts'

/** The agent-state slot of the asynchronous runs not yet reported, by node URI. */
const SLOT = 'objects.execs'

interface Pending {
  server: string
  type: string
  correlator?: string
  /** The boot id when an object that reboots the device was run. */
  boot?: string
}

export interface ExecDeps {
  sessions: Pick<SessionManager, 'queueGenericAlert' | 'openSession'>
  state: AgentState
  logger: Logger
  /** Aborted when the agent stops: what then runs is ended, and reported at the next start. */
  stopped: AbortSignal
  /** Where `/proc/sys/kernel/random/boot_id` is read (`GWMO_SYSROOT` in tests). */
  root?: string
}

/** The current boot's id, or '' when the system does not say. */
export function readBootId(root = '/'): Promise<string> {
  return readFile(join(root, 'proc/sys/kernel/random/boot_id'), 'utf8').then((s) => s.trim(), () => '')
}

export class Execs {
  readonly #deps: ExecDeps
  /** Nodes whose program runs now: a second Exec of one gets 417. */
  readonly #running = new Set<string>()

  constructor(deps: ExecDeps) {
    this.#deps = deps
  }

  #pending(): Record<string, Pending> {
    return { ...(this.#deps.state.slot(SLOT) as Record<string, Pending> | undefined) }
  }

  #note(uri: string, pending: Pending | undefined): void {
    const all = this.#pending()
    if (pending === undefined) delete all[uri]
    else all[uri] = pending
    this.#deps.state.setSlot(SLOT, Object.keys(all).length > 0 ? (all as unknown as JsonValue) : undefined)
  }

  /** Queues the result alert (the note's removal saved with it) and opens a session to deliver it. */
  async #report(uri: string, pending: Pending, status: number, open: boolean): Promise<void> {
    this.#note(uri, undefined)
    const { sessions, logger } = this.#deps
    await sessions.queueGenericAlert(pending.server, {
      type: pending.type,
      format: 'int',
      data: String(status),
      source: uri,
      ...(pending.correlator !== undefined && { correlator: pending.correlator }),
    })
    logger.info('exec result queued', { uri, server: pending.server, status })
    if (open) void sessions.openSession(pending.server, { alert: 1201 }).catch(() => {})
  }

  /** What a run's end answers: 200 exit 0, 408 killed at its timeout, 500 anything else (logged). */
  async #status(spec: ObjectSpec, data: ExternalValue | undefined, call: ExternalCall): Promise<number> {
    let reason: string | undefined
    let status = 500
    try {
      const r = await run(spec, spec.exec!.command, call, data ?? '')
      reason = runFailure(r)
      status = reason === undefined ? 200 : r.timedOut ? 408 : 500
    } catch (error) {
      reason = (error as Error).message
    }
    if (reason !== undefined) this.#deps.logger.warn('exec failed', { uri: call.uri, reason })
    return status
  }

  async exec(spec: ObjectSpec, data: ExternalValue | undefined, call: ExternalCall): Promise<number> {
    const uri = call.uri
    if (this.#running.has(uri)) return 417
    this.#running.add(uri)
    if (!spec.async) {
      try {
        return await this.#status(spec, data, call)
      } finally {
        this.#running.delete(uri)
      }
    }
    const pending: Pending = {
      server: call.serverId,
      type: spec.alertType,
      ...(call.correlator !== undefined && { correlator: call.correlator }),
      ...(spec.rebootsDevice && { boot: await readBootId(this.#deps.root) }),
    }
    try {
      this.#note(uri, pending)
      await this.#deps.state.save()
    } catch (error) {
      this.#running.delete(uri)
      this.#deps.logger.error('exec not started: the agent state cannot be written', { uri, error })
      return 500
    }
    const { stopped } = this.#deps
    // A reboot's program is not ended when the agent stops: the agent's stop is likely its doing.
    const signal = spec.rebootsDevice ? new AbortController().signal : stopped
    void this.#status(spec, data, { ...call, signal }).then(async (status) => {
      this.#running.delete(uri)
      // A reboot that went as asked is reported after the restart.
      if (stopped.aborted || (spec.rebootsDevice && status === 200)) return
      await this.#report(uri, pending, status, true)
    }).catch((error: unknown) => this.#deps.logger.error('exec result not queued', { uri, error }))
    return 202
  }

  /**
   * At start, before any session: the runs the last run of the agent did not see end, each reported once. The
   * start's own sessions deliver them (the caller opens one for every server with alerts waiting).
   */
  async resume(): Promise<void> {
    const all = this.#pending()
    if (Object.keys(all).length === 0) return
    const boot = await readBootId(this.#deps.root)
    for (const [uri, pending] of Object.entries(all)) {
      const restarted = pending.boot !== undefined && pending.boot !== '' && boot !== '' && boot !== pending.boot
      await this.#report(uri, pending, restarted ? 200 : 500, false)
    }
  }
}
