/**
 * Wires the session engine the way the agent does, minus the broker: a real ManagementTree on a MemoryStore,
 * a real AgentState, the real codec, a fake clock, and a `send` that captures what the device sends. The
 * party side builds its messages with the codec and computes its credentials with the auth primitives.
 */
import { md5Digest } from '../../src/auth/md5.ts'
import { basicCredential } from '../../src/auth/basic.ts'
import { computeHmacMac, formatHmacHeader } from '../../src/auth/hmac.ts'
import { decodeNonce, encodeNonce } from '../../src/auth/nonce.ts'
import { AUTH_TYPE, CONTENT_TYPE } from '../../src/codec/gwmo.ts'
import type { Chal, Command, Cred, Item, Status, SyncMLMessage } from '../../src/codec/syncml-model.ts'
import { decodeMessage, encodeMessage, type MessageEncoding } from '../../src/codec/syncml.ts'
import { AgentState } from '../../src/session/agent-state.ts'
import type { SessionConstants } from '../../src/session/constants.ts'
import { createSessionManager, type SessionEndInfo, type SessionManager } from '../../src/session/manager.ts'
import type { InboundMessage, OutboundMessage } from '../../src/session/port.ts'
import { MemoryStore } from '../../src/store/index.ts'
import { createStandardTree } from '../../src/tree/standard-tree.ts'
import { ManagementTree } from '../../src/tree/tree.ts'
import type { NodeValue } from '../../src/tree/types.ts'
import { captureLog, fakeClock, type CapturedLog, type FakeClock } from './gwmo-harness.ts'

export const DEVICE_ID = 'IMEI:493005100592800'

export interface AuthSpec {
  type: 'DIGEST' | 'BASIC' | 'HMAC'
  name: string
  secret: string
  nonce?: Uint8Array
}

export interface AccountSpec {
  node: string
  serverId: string
  address?: string
  authPref?: string
  clientAuth?: AuthSpec | AuthSpec[]
  serverAuth?: AuthSpec
}

export const SERVER: AccountSpec = {
  node: 'dms',
  serverId: 'http://dms.example.com',
  clientAuth: { type: 'DIGEST', name: 'device-user', secret: 'device-secret', nonce: bytes('client-nonce-0') },
  serverAuth: { type: 'DIGEST', name: 'dms-user', secret: 'dms-secret', nonce: bytes('server-nonce-0') },
}

export const GATEWAY: AccountSpec = {
  node: 'gw',
  serverId: 'http://gw.local',
  clientAuth: { type: 'DIGEST', name: 'device-at-gw', secret: 'gw-client-secret' },
  serverAuth: { type: 'DIGEST', name: 'gw-user', secret: 'gw-secret' },
}

export function bytes(text: string): Uint8Array {
  return new Uint8Array(Buffer.from(text, 'utf8'))
}

export interface HarnessOptions {
  accounts?: AccountSpec[]
  constants?: Partial<SessionConstants>
  treeStore?: MemoryStore
  stateStore?: MemoryStore
  /** Runs inside `send`, before the message is captured (durability checks). */
  onSend?: (message: OutboundMessage) => void | Promise<void>
  /** Random bytes; a counter-based source by default, so session ids differ and runs repeat. */
  random?: (n: number) => Uint8Array
}

export interface Harness {
  tree: ManagementTree
  treeStore: MemoryStore
  state: AgentState
  stateStore: MemoryStore
  clock: FakeClock
  log: CapturedLog
  manager: SessionManager
  sent: OutboundMessage[]
  ended: SessionEndInfo[]
  /** The decoded form of a sent message (the last one by default). */
  decoded(index?: number): SyncMLMessage
  /** Empties `sent`. */
  takeSent(): OutboundMessage[]
}

export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const treeStore = options.treeStore ?? new MemoryStore()
  const opened = await ManagementTree.open(treeStore, {
    factory: () => {
      const tree = createStandardTree({ devId: DEVICE_ID, man: 'Acme', mod: 'Pi-4', lang: 'en-US' })
      for (const account of options.accounts ?? [SERVER]) {
        const problem = addAccount(tree, account)
        if (problem) return { error: problem }
      }
      return tree
    },
  })
  if (!opened.ok) throw new Error(opened.error)
  const stateStore = options.stateStore ?? new MemoryStore()
  let counter = 0
  const random =
    options.random ??
    ((n: number) => {
      const out = new Uint8Array(n)
      for (let k = 0; k < n; k++) out[k] = (++counter * 37 + k * 11) & 0xff
      return out
    })
  const state = await AgentState.open(stateStore, random)
  if (!state.ok) throw new Error(state.error)
  const clock = fakeClock()
  const log = captureLog('debug')
  const sent: OutboundMessage[] = []
  const ended: SessionEndInfo[] = []
  const manager = createSessionManager({
    deviceId: DEVICE_ID,
    tree: opened.tree,
    state: state.state,
    send: async (message) => {
      await options.onSend?.(message)
      sent.push(message)
    },
    logger: log.logger,
    clock,
    random,
    ...(options.constants !== undefined && { constants: options.constants }),
    onSessionEnd: (info) => ended.push(info),
  })
  return {
    tree: opened.tree,
    treeStore,
    state: state.state,
    stateStore,
    clock,
    log,
    manager,
    sent,
    ended,
    decoded(index = sent.length - 1) {
      const message = sent[index]
      if (message === undefined) throw new Error(`no message #${index} was sent`)
      const result = decodeMessage(message.payload, message.contentType)
      if (!result.ok) throw new Error(`device sent an undecodable message: ${result.error.message}`)
      return result.value
    },
    takeSent() {
      return sent.splice(0, sent.length)
    },
  }
}

/** Adds a DMAcc account as the device would find it after a bootstrap. */
export function addAccount(tree: ManagementTree, spec: AccountSpec): string | undefined {
  const tx = tree.begin()
  const base = `./DMAcc/${spec.node}`
  const chr = (data: string): NodeValue => ({ format: 'chr', data })
  const put = (uri: string, value: NodeValue) => {
    const status = tx.add(uri, value, 'device')
    if (status !== 200) throw new Error(`add ${uri}: ${status}`)
  }
  put(`${base}/AppID`, chr('w7'))
  put(`${base}/ServerID`, chr(spec.serverId))
  put(`${base}/AppAddr/1/Addr`, chr(spec.address ?? spec.serverId))
  if (spec.authPref) put(`${base}/AAuthPref`, chr(spec.authPref))
  const entries: [string, AuthSpec][] = []
  for (const c of ([] as AuthSpec[]).concat(spec.clientAuth ?? [])) entries.push(['CLCRED', c])
  if (spec.serverAuth) entries.push(['SRVCRED', spec.serverAuth])
  entries.forEach(([level, auth], k) => {
    const entry = `${base}/AppAuth/${k + 1}`
    put(`${entry}/AAuthLevel`, chr(level))
    put(`${entry}/AAuthType`, chr(auth.type))
    put(`${entry}/AAuthName`, chr(auth.name))
    put(`${entry}/AAuthSecret`, chr(auth.secret))
    if (auth.nonce) put(`${entry}/AAuthData`, { format: 'bin', data: auth.nonce })
  })
  const result = tx.commit()
  return result.ok ? undefined : result.failure.messages.join('; ')
}

// ---------------------------------------------------------------------------------------------------------------
// The party side

export type CredMode = 'good' | 'bad' | 'none'

/**
 * A scripted DM party (server or gateway): it keeps the nonce the device gave it for its own credentials, and
 * the nonce it gave the device; it builds messages with the real codec.
 */
export class Party {
  /** The nonce the device expects in this party's credentials (its SRVCRED AAuthData). */
  nonce: Uint8Array
  /** The nonce this party gave the device (for checking the device's Cred). */
  deviceNonce: Uint8Array

  constructor(readonly spec: AccountSpec) {
    this.nonce = spec.serverAuth?.nonce ?? new Uint8Array(0)
    const client = ([] as AuthSpec[]).concat(spec.clientAuth ?? [])[0]
    this.deviceNonce = client?.nonce ?? new Uint8Array(0)
  }

  get serverId(): string {
    return this.spec.serverId
  }

  cred(mode: CredMode, nonce = this.nonce): Cred | undefined {
    const auth = this.spec.serverAuth!
    if (mode === 'none') return undefined
    const secret = mode === 'good' ? auth.secret : 'not-the-secret'
    if (auth.type === 'BASIC') return { meta: { type: AUTH_TYPE.BASIC, format: 'b64' }, data: basicCredential(auth.name, secret) }
    return { meta: { type: AUTH_TYPE.MD5, format: 'b64' }, data: md5Digest(auth.name, secret, nonce) }
  }

  /** A message from this party to the device. */
  message(options: {
    sessionId: string
    msgId: number | string
    body: Command[]
    final?: boolean
    cred?: CredMode
    encoding?: MessageEncoding
    hmac?: CredMode
    source?: string
  }): InboundMessage {
    const encoding = options.encoding ?? 'xml'
    const cred = this.cred(options.cred ?? 'good')
    const msg: SyncMLMessage = {
      hdr: {
        verDTD: '1.2',
        verProto: 'DM/1.2',
        sessionId: options.sessionId,
        msgId: String(options.msgId),
        target: { locUri: DEVICE_ID },
        source: { locUri: options.source ?? this.serverId, locName: this.spec.serverAuth?.name ?? 'anon' },
        ...(cred !== undefined && options.hmac === undefined && { cred }),
        meta: { maxMsgSize: 65536 },
      },
      body: numbered(options.body),
      final: options.final ?? true,
    }
    const payload = encodeMessage(msg, encoding)
    const properties: Record<string, string> = {}
    if (options.hmac !== undefined && options.hmac !== 'none') {
      const auth = this.spec.serverAuth!
      const secret = options.hmac === 'good' ? auth.secret : 'wrong'
      properties['x-syncml-hmac'] = formatHmacHeader({ username: auth.name, mac: computeHmacMac(auth.name, secret, this.nonce, payload) })
    }
    return { channel: 'dm', payload, contentType: encoding === 'wbxml' ? CONTENT_TYPE.WBXML : CONTENT_TYPE.XML, properties }
  }

  /** Takes the NextNonce from the device's SyncHdr Status, as the party would. */
  learnNonce(reply: SyncMLMessage): Uint8Array | undefined {
    const next = headerStatus(reply)?.chal?.meta.nextNonce
    if (next === undefined) return undefined
    const decoded = decodeNonce(next)
    if (decoded) this.nonce = decoded
    return decoded
  }

  /** Whether the device's Cred in a message verifies with the nonce this party gave it. */
  deviceCredValid(msg: SyncMLMessage, nonce = this.deviceNonce): boolean {
    const client = ([] as AuthSpec[]).concat(this.spec.clientAuth ?? [])[0]!
    return msg.hdr.cred?.data === md5Digest(client.name, client.secret, nonce)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Small builders and readers

export function get(...uris: string[]): Command {
  return { kind: 'Get', cmdId: '', items: uris.map((u) => ({ target: { locUri: u } })) }
}

export function add(uri: string, data?: string, format = 'chr'): Command {
  const item: Item = { target: { locUri: uri }, meta: { format } }
  if (data !== undefined) item.data = data
  return { kind: 'Add', cmdId: '', items: [item] }
}

export function replace(uri: string, data: string, format = 'chr'): Command {
  return { kind: 'Replace', cmdId: '', items: [{ target: { locUri: uri }, meta: { format }, data }] }
}

export function del(uri: string): Command {
  return { kind: 'Delete', cmdId: '', items: [{ target: { locUri: uri } }] }
}

export function exec(uri: string, data?: string): Command {
  const item: Item = { target: { locUri: uri } }
  if (data !== undefined) item.data = data
  return { kind: 'Exec', cmdId: '', items: [item] }
}

export function copy(from: string, to: string): Command {
  return { kind: 'Copy', cmdId: '', items: [{ source: { locUri: from }, target: { locUri: to } }] }
}

export function atomic(...commands: Command[]): Command {
  return { kind: 'Atomic', cmdId: '', commands }
}

export function sequence(...commands: Command[]): Command {
  return { kind: 'Sequence', cmdId: '', commands }
}

export function alert(code: string, items: Item[] = []): Command {
  return { kind: 'Alert', cmdId: '', data: code, items }
}

export function status(msgRef: string, cmdRef: string, cmd: string, code: number, chal?: Chal): Status {
  const s: Status = { kind: 'Status', cmdId: '', msgRef, cmdRef, cmd, targetRefs: [], sourceRefs: [], data: String(code), items: [] }
  if (chal) s.chal = chal
  return s
}

export function md5Chal(nonce: Uint8Array): Chal {
  return { meta: { type: AUTH_TYPE.MD5, format: 'b64', nextNonce: encodeNonce(nonce) } }
}

/** Numbers the CmdIDs of a body from 1 in document order, nested commands included (tests refer to them). */
export function numbered(body: Command[]): Command[] {
  let n = 0
  const walk = (c: Command): Command => {
    const cmdId = String(++n)
    if (c.kind === 'Atomic' || c.kind === 'Sequence') return { ...c, cmdId, commands: c.commands.map(walk) }
    return { ...c, cmdId }
  }
  return body.map(walk)
}

export function headerStatus(msg: SyncMLMessage): Status | undefined {
  return msg.body.find((c): c is Status => c.kind === 'Status' && c.cmdRef === '0')
}

export function statusesFor(msg: SyncMLMessage, cmdRef: string): Status[] {
  return msg.body.filter((c): c is Status => c.kind === 'Status' && c.cmdRef === cmdRef)
}

/** The codes of the Statuses in a message, keyed `cmdRef` (several items of one command joined by `,`). */
export function statusCodes(msg: SyncMLMessage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const c of msg.body) {
    if (c.kind !== 'Status') continue
    out[c.cmdRef] = out[c.cmdRef] === undefined ? c.data : `${out[c.cmdRef]},${c.data}`
  }
  return out
}

/**
 * The party opens a session as a real one does (binding.md §6): with the nonce it holds, and after a 401 + Chal
 * (its nonce was spent, or the device never gave it one) once more with the Chal's. Returns the device's answer
 * (undefined when none came) and the MsgID the party's next message of the session takes.
 */
export async function push(h: Harness, party: Party, sessionId: string, body: Command[]): Promise<{ reply: SyncMLMessage | undefined; nextMsgId: number }> {
  const before = h.sent.length
  await h.manager.receive(party.message({ sessionId, msgId: 1, body }))
  if (h.sent.length === before) return { reply: undefined, nextMsgId: 2 }
  const first = h.decoded()
  party.learnNonce(first)
  const code = headerStatus(first)?.data
  if (code !== '401' && code !== '407') return { reply: first, nextMsgId: 2 }
  await h.manager.receive(party.message({ sessionId, msgId: 2, body }))
  const reply = h.sent.length > before + 1 ? h.decoded() : undefined
  if (reply !== undefined) party.learnNonce(reply)
  return { reply, nextMsgId: 3 }
}

/** Lets queued promise callbacks run. */
export async function settle(rounds = 50): Promise<void> {
  for (let k = 0; k < rounds; k++) await new Promise((resolve) => setImmediate(resolve))
}
