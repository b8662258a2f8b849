import { createHash } from 'node:crypto'
import type { TreeStore } from '../tree/types.ts'

/**
 * The agent's own persisted state beside the management tree (Anjay `*_persistence.c` style: a header with a
 * version and a checksum, all-or-nothing restore, saved atomically through a bytes adapter):
 * - the device nonce key and how far the nonce counter is reserved (binding.md §6);
 * - the Generic Alerts waiting for a Status 200/202 from their server (binding.md §3);
 * - per-account flags (`firstSessionDone`…) and named slots the GwMO layer keeps here (`location`…).
 *
 * File layout: one ASCII line `GWMO-AGENT-STATE <version> <sha256 hex of the body>`, then the JSON body.
 */

export const AGENT_STATE_VERSION = 1
const MAGIC = 'GWMO-AGENT-STATE'
export const DEVICE_KEY_BYTES = 32

/** The same byte-level adapter as the tree's (`AtomicFileStore` on disk, `MemoryStore` in tests). */
export type StateStore = TreeStore

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/** A Generic Alert (OMA DM Protocol 1.2, 8.7) as the layers above ask for it; the CmdID is given when sent. */
export interface GenericAlertSpec {
  /** Meta/Type, e.g. `urn:oma:gwmo:1.0:BootstrappedDMSList`. */
  type: string
  /** Meta/Format; `text/plain` when absent. */
  format?: string
  data: string | Uint8Array
  /** Item/Source/LocURI and Item/Target/LocURI. */
  source?: string
  target?: string
  mark?: string
  correlator?: string
}

export interface PendingAlert {
  /** Stable across restarts: what a Status from the server is matched to. */
  id: string
  alert: GenericAlertSpec
  queuedAt: number
}

interface StateDocument {
  deviceKey: string
  nonceReservedUntil: string
  alertSeq: number
  pendingAlerts: Record<string, StoredAlert[]>
  accounts: Record<string, Record<string, JsonValue>>
  slots: Record<string, JsonValue>
}

/** A queued alert as saved: its data as `text`, or as `b64` when it is bytes; the optional fields when set. */
interface StoredAlert extends Omit<GenericAlertSpec, 'data'> {
  id: string
  text?: string
  b64?: string
  queuedAt: number
}

/** The optional fields of a Generic Alert, copied only when set so that a saved alert holds no empty keys. */
const OPTIONAL_ALERT_FIELDS = ['format', 'source', 'target', 'mark', 'correlator'] as const

export type StateOpenResult = { ok: true; state: AgentState; created: boolean } | { ok: false; error: string }

export class AgentState {
  #doc: StateDocument
  #store: StateStore
  readonly deviceKey: Uint8Array
  #dirty = false
  #saving: Promise<void> | undefined
  #queuedSave: Promise<void> | undefined

  private constructor(store: StateStore, doc: StateDocument) {
    this.#store = store
    this.#doc = doc
    this.deviceKey = new Uint8Array(Buffer.from(doc.deviceKey, 'base64'))
  }

  /**
   * Restores the state from the store, or creates it (a fresh random device key) when the store is empty and
   * saves it at once. A corrupt or newer file is refused with a one-line reason and left untouched.
   */
  static async open(store: StateStore, random: (n: number) => Uint8Array): Promise<StateOpenResult> {
    const bytes = await store.load()
    if (bytes === undefined) {
      const key = random(DEVICE_KEY_BYTES)
      if (key.length !== DEVICE_KEY_BYTES) return { ok: false, error: 'agent state: random source gave a short key' }
      const doc: StateDocument = {
        deviceKey: Buffer.from(key).toString('base64'),
        nonceReservedUntil: '0',
        alertSeq: 0,
        pendingAlerts: {},
        accounts: {},
        slots: {},
      }
      const state = new AgentState(store, doc)
      await state.save()
      return { ok: true, state, created: true }
    }
    const parsed = parseStateFile(bytes)
    if (typeof parsed === 'string') return { ok: false, error: `agent state: ${parsed}` }
    return { ok: true, state: new AgentState(store, parsed), created: false }
  }

  /** True while a change has not been saved. */
  get dirty(): boolean {
    return this.#dirty
  }

  // ---- nonce counter (binding.md §6) ----

  /**
   * The end (exclusive) of the reserved nonce counter range. Every counter below it may have been used before a
   * crash, so after a restore counting starts here; `NonceIssuer` raises it (and saves) before using more.
   */
  get nonceReservedUntil(): bigint {
    return BigInt(this.#doc.nonceReservedUntil)
  }

  set nonceReservedUntil(value: bigint) {
    if (value < this.nonceReservedUntil) throw new RangeError('the nonce reservation never moves back')
    this.#doc.nonceReservedUntil = value.toString()
    this.#dirty = true
  }

  // ---- Generic Alert queue (binding.md §3) ----

  enqueueAlert(serverId: string, alert: GenericAlertSpec, now: number): PendingAlert {
    this.#doc.alertSeq += 1
    const stored = toStored(`${this.#doc.alertSeq}`, alert, now)
    ;(this.#doc.pendingAlerts[serverId] ??= []).push(stored)
    this.#dirty = true
    return fromStored(stored)
  }

  pendingAlerts(serverId: string): PendingAlert[] {
    return (this.#doc.pendingAlerts[serverId] ?? []).map(fromStored)
  }

  /** Drops an acknowledged alert; false when it was not queued (already dropped, or never). */
  removeAlert(serverId: string, id: string): boolean {
    const queue = this.#doc.pendingAlerts[serverId]
    const index = queue?.findIndex((a) => a.id === id) ?? -1
    if (queue === undefined || index < 0) return false
    queue.splice(index, 1)
    if (queue.length === 0) delete this.#doc.pendingAlerts[serverId]
    this.#dirty = true
    return true
  }

  /** ServerIDs with alerts waiting. */
  serversWithPendingAlerts(): string[] {
    return Object.keys(this.#doc.pendingAlerts)
  }

  // ---- per-account flags and named slots ----

  accountFlag(serverId: string, name: string): JsonValue | undefined {
    return this.#doc.accounts[serverId]?.[name]
  }

  setAccountFlag(serverId: string, name: string, value: JsonValue | undefined): void {
    const flags = (this.#doc.accounts[serverId] ??= {})
    if (value === undefined) delete flags[name]
    else flags[name] = cloneJson(value)
    if (Object.keys(flags).length === 0) delete this.#doc.accounts[serverId]
    this.#dirty = true
  }

  slot(name: string): JsonValue | undefined {
    const value = this.#doc.slots[name]
    return value === undefined ? undefined : cloneJson(value)
  }

  setSlot(name: string, value: JsonValue | undefined): void {
    if (value === undefined) delete this.#doc.slots[name]
    else this.#doc.slots[name] = cloneJson(value)
    this.#dirty = true
  }

  // ---- persistence ----

  /**
   * Saves the whole document atomically (the store's contract). Calls made while a save runs are coalesced into
   * one more save after it, which includes every change made before the call: when the promise resolves, the
   * state as it was at the call is durable.
   */
  save(): Promise<void> {
    if (this.#queuedSave) return this.#queuedSave
    if (this.#saving) {
      const after = this.#saving.catch(() => undefined).then(() => {
        this.#queuedSave = undefined
        return this.#saveNow()
      })
      this.#queuedSave = after
      return after
    }
    return this.#saveNow()
  }

  #saveNow(): Promise<void> {
    // A store that keeps nothing (an in-memory fleet) needs no bytes: the state lives in this object alone.
    if (this.#store.keepsNothing === true) {
      this.#dirty = false
      return Promise.resolve()
    }
    const bytes = serializeState(this.#doc)
    this.#dirty = false
    const saving = this.#store.save(bytes).then(
      () => {
        if (this.#saving === saving) this.#saving = undefined
      },
      (error: unknown) => {
        if (this.#saving === saving) this.#saving = undefined
        this.#dirty = true
        throw error
      },
    )
    this.#saving = saving
    return saving
  }
}

function checksum(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('hex')
}

function serializeState(doc: StateDocument): Uint8Array {
  const body = JSON.stringify(doc)
  return new Uint8Array(Buffer.from(`${MAGIC} ${AGENT_STATE_VERSION} ${checksum(body)}\n${body}`, 'utf8'))
}

/** The document a state file holds, or the reason it is refused. */
function parseStateFile(bytes: Uint8Array): StateDocument | string {
  const text = Buffer.from(bytes).toString('utf8')
  const newline = text.indexOf('\n')
  const header = (newline < 0 ? text : text.slice(0, newline)).split(' ')
  if (header.length !== 3 || header[0] !== MAGIC) return 'not an agent state file (bad header)'
  const version = Number(header[1])
  if (!Number.isInteger(version) || version < 1) return 'bad version in header'
  if (version > AGENT_STATE_VERSION) return `version ${version} is newer than this agent reads (${AGENT_STATE_VERSION})`
  const body = text.slice(newline + 1)
  if (checksum(body) !== header[2]) return 'checksum mismatch (corrupt or truncated file)'
  let raw: unknown
  try {
    raw = JSON.parse(body)
  } catch {
    return 'body is not JSON'
  }
  return checkDocument(raw) ?? (raw as StateDocument)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The reason a parsed body is not a version-1 document, or undefined when it is one. */
function checkDocument(raw: unknown): string | undefined {
  if (!isRecord(raw)) return 'body is not an object'
  if (typeof raw.deviceKey !== 'string' || Buffer.from(raw.deviceKey, 'base64').length !== DEVICE_KEY_BYTES) {
    return 'deviceKey: not a 32-byte base64 key'
  }
  if (typeof raw.nonceReservedUntil !== 'string' || !/^\d{1,20}$/.test(raw.nonceReservedUntil)) {
    return 'nonceReservedUntil: not a counter'
  }
  if (!Number.isSafeInteger(raw.alertSeq) || (raw.alertSeq as number) < 0) return 'alertSeq: not a count'
  if (!isRecord(raw.pendingAlerts)) return 'pendingAlerts: not an object'
  for (const [serverId, queue] of Object.entries(raw.pendingAlerts)) {
    if (!Array.isArray(queue)) return `pendingAlerts.${serverId}: not a list`
    for (const alert of queue) {
      if (!isRecord(alert) || typeof alert.id !== 'string' || typeof alert.type !== 'string') {
        return `pendingAlerts.${serverId}: an alert without id or type`
      }
      if (typeof alert.text !== 'string' && typeof alert.b64 !== 'string') return `pendingAlerts.${serverId}: alert ${alert.id} has no data`
    }
  }
  if (!isRecord(raw.accounts) || !Object.values(raw.accounts).every(isRecord)) return 'accounts: not an object of objects'
  if (!isRecord(raw.slots)) return 'slots: not an object'
  return undefined
}

function copyOptionalFields(from: Omit<GenericAlertSpec, 'data'>, to: Omit<GenericAlertSpec, 'data'>): void {
  for (const field of OPTIONAL_ALERT_FIELDS) if (from[field] !== undefined) to[field] = from[field]
}

function toStored(id: string, alert: GenericAlertSpec, now: number): StoredAlert {
  const stored: StoredAlert = { id, type: alert.type, queuedAt: now }
  if (typeof alert.data === 'string') stored.text = alert.data
  else stored.b64 = Buffer.from(alert.data).toString('base64')
  copyOptionalFields(alert, stored)
  return stored
}

function fromStored(stored: StoredAlert): PendingAlert {
  const alert: GenericAlertSpec = {
    type: stored.type,
    data: stored.text ?? new Uint8Array(Buffer.from(stored.b64 ?? '', 'base64')),
  }
  copyOptionalFields(stored, alert)
  return { id: stored.id, alert, queuedAt: stored.queuedAt }
}

function cloneJson(value: JsonValue): JsonValue {
  return JSON.parse(JSON.stringify(value)) as JsonValue
}
