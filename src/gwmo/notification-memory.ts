/**
 * What the device keeps about the DM Notifications of each DM Server, across restarts (binding.md §6):
 * - the session ids of the notifications it acted on, so that a captured notification replayed later opens
 *   nothing (OMA DM Notification 1.2, 6.2.2.10: one session id, one session). Only notifications whose digest
 *   verified are recorded: a forger can neither fill this memory nor push an id out of it;
 * - whether the server is out of step (its last notification failed on the stored nonce, or the device replaced
 *   every stored nonce after an unclean stop): only then is the default nonce tried for its digest.
 *
 * One agent-state slot (one entry of the store, written whole when a notification is recorded: bounded by
 * `maxPerServer` ids a server, whatever the size of the tree or of the alert queues):
 *   `{ "<ServerID>": { "outOfStep"?: true, "handled"?: [["<session id hex>", <ms since the epoch>], …] } }`,
 * oldest id first. An id stays while it is one of the server's last `keepLast` or younger than `keepForMs`, and
 * never beyond `maxPerServer` (the oldest go first: a server sending more than that in a day is misbehaving).
 * Every write drops the servers the device no longer holds an account for.
 */
import type { AgentState, JsonValue } from '../session/agent-state.ts'

export const NOTIFICATION_MEMORY = Object.freeze({
  /** binding.md §6: at least the last 64 session ids per server… */
  keepLast: 64,
  /** …and every one of the last 24 hours… */
  keepForMs: 24 * 60 * 60 * 1000,
  /** …up to this many per server (about 6 KB of state each). */
  maxPerServer: 256,
})

const SLOT = 'gwmo.notifications'

interface ServerRecord {
  outOfStep?: true
  /** [session id (upper-case hex), when it was handled (ms)], oldest first. */
  handled?: Array<[string, number]>
}

type Memory = Record<string, ServerRecord>

export class NotificationMemory {
  readonly #state: AgentState
  /** The ServerIDs of the DM Servers the device holds an account for now. */
  readonly #servers: () => Iterable<string>
  /** The slot as read once; the only writer while the agent runs is this object. */
  #memory: Memory | undefined

  constructor(state: AgentState, servers: () => Iterable<string>) {
    this.#state = state
    this.#servers = servers
  }

  outOfStep(serverId: string): boolean {
    return this.#read()[serverId]?.outOfStep === true
  }

  /** True when a notification with this session id from this server was acted on and is still remembered. */
  handled(serverId: string, sessionId: string, now: number): boolean {
    return retained(this.#read()[serverId]?.handled ?? [], now).some(([id]) => id === sessionId)
  }

  /**
   * Records a verified notification the device is about to act on; `inStep` when it verified with the stored
   * nonce (the server is in step again). Call `save()` before acting on it.
   */
  record(serverId: string, sessionId: string, now: number, inStep: boolean): void {
    this.#change(serverId, (record) => {
      record.handled = retained([...(record.handled ?? []), [sessionId, now]], now)
      if (inStep) delete record.outOfStep
    })
  }

  /** Takes a record back out (the state could not be saved, so the notification was not acted on). */
  forget(serverId: string, sessionId: string, now: number): void {
    if (!this.handled(serverId, sessionId, now)) return
    this.#change(serverId, (record) => {
      record.handled = record.handled?.filter(([id]) => id !== sessionId)
    })
  }

  /** Marks the server out of step; false when it already was (nothing changed, nothing to save). */
  markOutOfStep(serverId: string): boolean {
    if (this.outOfStep(serverId)) return false
    this.#change(serverId, (record) => {
      record.outOfStep = true
    })
    return true
  }

  /** Marks every server out of step (the device replaced their stored nonces). */
  markAllOutOfStep(): void {
    for (const serverId of this.#servers()) this.markOutOfStep(serverId)
  }

  /** Makes the changes durable (the agent state's atomic save). */
  save(): Promise<void> {
    return this.#state.save()
  }

  #read(): Memory {
    return (this.#memory ??= parseMemory(this.#state.slot(SLOT)))
  }

  #change(serverId: string, edit: (record: ServerRecord) => void): void {
    const known = new Set(this.#servers())
    const memory: Memory = {}
    for (const [id, record] of Object.entries(this.#read())) if (known.has(id)) memory[id] = record
    const record: ServerRecord = { ...memory[serverId] }
    edit(record)
    if (record.handled?.length === 0) delete record.handled
    if ((record.outOfStep === undefined && record.handled === undefined) || !known.has(serverId)) delete memory[serverId]
    else memory[serverId] = record
    this.#memory = memory
    this.#state.setSlot(SLOT, Object.keys(memory).length === 0 ? undefined : (memory as Record<string, JsonValue>))
  }
}

/** The entries kept at `now`: the last `keepLast`, and any younger than `keepForMs`, at most `maxPerServer`. */
function retained(handled: Array<[string, number]>, now: number): Array<[string, number]> {
  const { keepLast, keepForMs, maxPerServer } = NOTIFICATION_MEMORY
  const kept = handled.filter(([, at], index) => index >= handled.length - keepLast || now - at < keepForMs)
  return kept.length > maxPerServer ? kept.slice(-maxPerServer) : kept
}

/** The slot's content; anything malformed in it is left out (the store itself is checksummed). */
function parseMemory(value: JsonValue | undefined): Memory {
  const memory: Memory = {}
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return memory
  for (const [serverId, raw] of Object.entries(value)) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) continue
    const record: ServerRecord = {}
    if (raw.outOfStep === true) record.outOfStep = true
    if (Array.isArray(raw.handled)) {
      const handled = raw.handled.filter((e): e is [string, number] =>
        Array.isArray(e) && e.length === 2 && typeof e[0] === 'string' && typeof e[1] === 'number')
      if (handled.length > 0) record.handled = handled
    }
    if (record.outOfStep !== undefined || record.handled !== undefined) memory[serverId] = record
  }
  return memory
}
