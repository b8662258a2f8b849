/**
 * Polling (binding.md §10): a server the device reaches over HTTP cannot push, so an account that says
 * `Ext/GwmoAgent/PollSeconds` gets a client-initiated session that often, each wait drawn within ±10 % so that a
 * fleet started together does not poll together. The accounts are read again after every session (a bootstrap or
 * a server may have changed them): a new or changed period starts its timer afresh, a removed one stops.
 */
import type { Clock } from '../session/engine.ts'
import { readAccounts } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'

export interface PollerDeps {
  tree: TreeOps
  clock: Clock
  /** A number in [0, 1). */
  random: () => number
  open(serverId: string): void
}

interface Timer {
  seconds: number
  handle: unknown
}

const JITTER = 0.1

export class Poller {
  readonly #timers = new Map<string, Timer>()
  #stopped = false

  constructor(private readonly deps: PollerDeps) {}

  /** Reads the accounts and sets the timers to match. */
  refresh(): void {
    if (this.#stopped) return
    const periods = new Map<string, number>()
    for (const account of readAccounts(this.deps.tree)) if (account.pollSeconds !== undefined) periods.set(account.serverId, account.pollSeconds)
    for (const [serverId, timer] of this.#timers) {
      if (periods.get(serverId) === timer.seconds) continue
      this.deps.clock.clearTimeout(timer.handle)
      this.#timers.delete(serverId)
    }
    for (const [serverId, seconds] of periods) if (!this.#timers.has(serverId)) this.#schedule(serverId, seconds)
  }

  stop(): void {
    this.#stopped = true
    for (const timer of this.#timers.values()) this.deps.clock.clearTimeout(timer.handle)
    this.#timers.clear()
  }

  #schedule(serverId: string, seconds: number): void {
    const delay = Math.round(seconds * 1000 * (1 - JITTER + 2 * JITTER * this.deps.random()))
    const timer: Timer = { seconds, handle: undefined }
    timer.handle = this.deps.clock.setTimeout(() => {
      if (this.#timers.get(serverId) !== timer) return
      this.#schedule(serverId, seconds)
      this.deps.open(serverId)
    }, delay)
    this.#timers.set(serverId, timer)
  }
}
