import type { Store } from '../store/store.ts'
import { parseLegacyStateFile, type LegacyStateDocument } from './legacy-state-file.ts'

/**
 * The agent's own durable state beside the management tree, in the store (src/store) as the `state` namespace:
 * - the device nonce key and how far the nonce counter is reserved (binding.md §6);
 * - the Generic Alerts waiting for a Status 200/202 from their server (binding.md §3);
 * - per-account flags (`firstSessionDone`, `spentNonces`…) and named slots the other layers keep here (the
 *   GwMO location record, `gwmo.notifications`…).
 *
 * One entry per item, so that a change writes that item alone (binding.md §11): an alert queued is one entry,
 * not the queue. Keys and values (JSON unless said otherwise, UTF-8):
 *   `deviceKey`                    the 32-byte key, raw
 *   `nonceReservedUntil`           the counter, decimal
 *   `alertSeq`                     the last alert id given, decimal
 *   `alert/<id>`                   `{ "server", "type", "text" | "b64", "queuedAt", and the optional fields }`
 *   `flag/<name>/<ServerID>`       the flag's value (a flag's name has no `/`)
 *   `slot/<name>`                  the slot's value
 * Every change is told to the store at once; `save` makes them durable (the store's commit).
 */

/** The version of the state file agents before the store kept (`agent-state.dat`, migrated on first start). */
export { LEGACY_STATE_FILE_VERSION as AGENT_STATE_VERSION } from './legacy-state-file.ts'
export const DEVICE_KEY_BYTES = 32
/** The agent state's namespace in the store. */
export const STATE_NAMESPACE = 'state'

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

const ENCODER = new TextEncoder()
const DECODER = new TextDecoder('utf-8', { fatal: true })

export class AgentState {
  #doc: StateDocument
  /** Where changes go; undefined without a store, or with one that keeps nothing (no bytes are made then). */
  #journal: Store | undefined
  readonly deviceKey: Uint8Array
  /** Bumped by every change; `#durable` is the last one a save made durable. */
  #generation = 0
  #durable = 0

  private constructor(doc: StateDocument, deviceKey: Uint8Array) {
    this.#doc = doc
    this.deviceKey = deviceKey
  }

  /**
   * Restores the state from the store, or creates it (a fresh random device key) when the store holds none and
   * saves it at once. A store that cannot be read, or a state that is not whole, is refused with a one-line
   * reason and left untouched.
   */
  static async open(store: Store, random: (n: number) => Uint8Array): Promise<StateOpenResult> {
    const loaded = await store.load(STATE_NAMESPACE)
    if (!loaded.ok) return { ok: false, error: `agent state: ${loaded.error}` }
    if (loaded.entries === undefined) {
      const key = random(DEVICE_KEY_BYTES)
      if (key.length !== DEVICE_KEY_BYTES) return { ok: false, error: 'agent state: random source gave a short key' }
      const state = new AgentState({ nonceReservedUntil: '0', alertSeq: 0, pendingAlerts: {}, accounts: {}, slots: {} }, key.slice())
      state.attachStore(store)
      await state.save()
      return { ok: true, state, created: true }
    }
    const parsed = fromEntries(loaded.entries)
    if (typeof parsed === 'string') return { ok: false, error: `agent state: ${parsed}` }
    const state = new AgentState(parsed.doc, parsed.deviceKey)
    state.#attach(store, false)
    return { ok: true, state, created: false }
  }

  /** The state of an `agent-state.dat` written by an agent before the store (a migration), with no store yet. */
  static fromLegacyFile(bytes: Uint8Array): { ok: true; state: AgentState } | { ok: false; error: string } {
    const parsed = parseLegacyStateFile(bytes)
    if (typeof parsed === 'string') return { ok: false, error: `agent state: ${parsed}` }
    const { deviceKey, ...doc } = parsed satisfies LegacyStateDocument
    return { ok: true, state: new AgentState(doc, new Uint8Array(Buffer.from(deviceKey, 'base64'))) }
  }

  /** Makes `store` the state's store, holding the state as it is now (made durable by the next save). */
  attachStore(store: Store): void {
    this.#attach(store, true)
  }

  #attach(store: Store, replace: boolean): void {
    this.#journal = store.keepsNothing === true ? undefined : store
    const journal = this.#journal
    if (journal === undefined) return
    journal.attach(STATE_NAMESPACE, () => this.#entries())
    if (!replace) return
    journal.clear(STATE_NAMESPACE)
    for (const [key, value] of this.#entries()) journal.put(STATE_NAMESPACE, key, value)
    this.#generation++
  }

  /** True while a change has not been saved. */
  get dirty(): boolean {
    return this.#generation !== this.#durable
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
    this.#put('nonceReservedUntil', () => ENCODER.encode(this.#doc.nonceReservedUntil))
  }

  // ---- Generic Alert queue (binding.md §3) ----

  enqueueAlert(serverId: string, alert: GenericAlertSpec, now: number): PendingAlert {
    this.#doc.alertSeq += 1
    const stored = toStored(`${this.#doc.alertSeq}`, alert, now)
    ;(this.#doc.pendingAlerts[serverId] ??= []).push(stored)
    this.#put('alertSeq', () => ENCODER.encode(String(this.#doc.alertSeq)))
    this.#put(alertKey(stored.id), () => encodeAlert(serverId, stored))
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
    this.#delete(alertKey(id))
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
    if (name.includes('/')) throw new RangeError(`a flag's name has no '/': ${name}`)
    const flags = (this.#doc.accounts[serverId] ??= {})
    const key = flagKey(name, serverId)
    if (value === undefined) {
      delete flags[name]
      this.#delete(key)
    } else {
      const text = JSON.stringify(value)
      flags[name] = JSON.parse(text) as JsonValue
      this.#put(key, () => ENCODER.encode(text))
    }
    if (Object.keys(flags).length === 0) delete this.#doc.accounts[serverId]
  }

  slot(name: string): JsonValue | undefined {
    const value = this.#doc.slots[name]
    return value === undefined ? undefined : cloneJson(value)
  }

  setSlot(name: string, value: JsonValue | undefined): void {
    if (value === undefined) {
      delete this.#doc.slots[name]
      this.#delete(slotKey(name))
      return
    }
    const text = JSON.stringify(value)
    this.#doc.slots[name] = JSON.parse(text) as JsonValue
    this.#put(slotKey(name), () => ENCODER.encode(text))
  }

  // ---- persistence ----

  /**
   * Makes every change so far durable (the store's commit: one small record). Calls made while a write runs
   * share it, or one follow-up write: when the promise resolves, the state as it was at the call is durable.
   */
  save(): Promise<void> {
    const journal = this.#journal
    if (journal === undefined || !this.dirty) {
      // A store that keeps nothing (an in-memory fleet) needs no bytes: the state lives in this object alone.
      if (journal === undefined) this.#durable = this.#generation
      return Promise.resolve()
    }
    const generation = this.#generation
    return journal.commit().then(() => {
      if (generation > this.#durable) this.#durable = generation
    })
  }

  /** The value is made only for a store that keeps it. */
  #put(key: string, value: () => Uint8Array): void {
    this.#generation++
    this.#journal?.put(STATE_NAMESPACE, key, value())
  }

  #delete(key: string): void {
    this.#generation++
    this.#journal?.delete(STATE_NAMESPACE, key)
  }

  *#entries(): Iterable<[string, Uint8Array]> {
    const doc = this.#doc
    yield ['deviceKey', this.deviceKey]
    yield ['nonceReservedUntil', ENCODER.encode(doc.nonceReservedUntil)]
    yield ['alertSeq', ENCODER.encode(String(doc.alertSeq))]
    for (const [serverId, queue] of Object.entries(doc.pendingAlerts)) {
      for (const stored of queue) yield [alertKey(stored.id), encodeAlert(serverId, stored)]
    }
    for (const [serverId, flags] of Object.entries(doc.accounts)) {
      for (const [name, value] of Object.entries(flags)) yield [flagKey(name, serverId), ENCODER.encode(JSON.stringify(value))]
    }
    for (const [name, value] of Object.entries(doc.slots)) yield [slotKey(name), ENCODER.encode(JSON.stringify(value))]
  }
}

const alertKey = (id: string) => `alert/${id}`
const flagKey = (name: string, serverId: string) => `flag/${name}/${serverId}`
const slotKey = (name: string) => `slot/${name}`

function encodeAlert(serverId: string, stored: StoredAlert): Uint8Array {
  return ENCODER.encode(JSON.stringify({ server: serverId, ...stored, id: undefined }))
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The state the store's entries hold, or the one-line reason they are not a whole state. */
function fromEntries(entries: Map<string, Uint8Array>): { doc: StateDocument; deviceKey: Uint8Array } | string {
  const doc: StateDocument = { nonceReservedUntil: '', alertSeq: -1, pendingAlerts: {}, accounts: {}, slots: {} }
  let deviceKey: Uint8Array | undefined
  const alerts: Array<[number, string, StoredAlert]> = []
  for (const [key, bytes] of entries) {
    let text: string
    let value: unknown
    try {
      text = DECODER.decode(bytes)
      value = key === 'deviceKey' || key === 'nonceReservedUntil' || key === 'alertSeq' ? text : JSON.parse(text)
    } catch {
      if (key !== 'deviceKey') return `${key}: not UTF-8 JSON`
      text = ''
      value = ''
    }
    if (key === 'deviceKey') {
      if (bytes.length !== DEVICE_KEY_BYTES) return 'deviceKey: not a 32-byte key'
      deviceKey = bytes.slice()
    } else if (key === 'nonceReservedUntil') {
      if (!/^\d{1,20}$/.test(text)) return 'nonceReservedUntil: not a counter'
      doc.nonceReservedUntil = text
    } else if (key === 'alertSeq') {
      if (!/^\d{1,15}$/.test(text)) return 'alertSeq: not a count'
      doc.alertSeq = Number(text)
    } else if (key.startsWith('alert/')) {
      const id = key.slice('alert/'.length)
      if (!isRecord(value) || typeof value.server !== 'string' || typeof value.type !== 'string') return `${key}: an alert without server or type`
      if (typeof value.text !== 'string' && typeof value.b64 !== 'string') return `${key}: an alert without data`
      const { server, ...rest } = value
      alerts.push([Number(id), server, { ...(rest as Omit<StoredAlert, 'id'>), id }])
    } else if (key.startsWith('flag/')) {
      const slash = key.indexOf('/', 'flag/'.length)
      if (slash < 0) return `${key}: a flag without a server`
      ;(doc.accounts[key.slice(slash + 1)] ??= {})[key.slice('flag/'.length, slash)] = value as JsonValue
    } else if (key.startsWith('slot/')) {
      doc.slots[key.slice('slot/'.length)] = value as JsonValue
    } else {
      return `${key}: not an entry this agent knows`
    }
  }
  if (deviceKey === undefined) return 'deviceKey: missing'
  if (doc.nonceReservedUntil === '') return 'nonceReservedUntil: missing'
  if (doc.alertSeq < 0) return 'alertSeq: missing'
  // Queue order is id order (ids only grow).
  alerts.sort((a, b) => a[0] - b[0])
  for (const [, server, stored] of alerts) (doc.pendingAlerts[server] ??= []).push(stored)
  return { doc, deviceKey }
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
