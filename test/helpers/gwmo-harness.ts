/**
 * What the GwMO tests share: a fake clock driven by hand, a logger that keeps its lines, a memory-backed agent
 * state, and a whole device in memory (`gwmoWorld`): the real session engine, tree and codec with GwMO
 * installed, a captured `send`, and parties driven from the test, whose messages and credentials are built by
 * the peers' own code (test/peers), not the agent's.
 */
import { installGwmo, type Gwmo, type GwmoConfig } from '../../src/gwmo/index.ts'
import type { LocationSource, NetworkLocation } from '../../src/gwmo/location-source.ts'
import { createLogger, type Logger } from '../../src/log.ts'
import { AgentState } from '../../src/session/agent-state.ts'
import { createSessionManager, type SessionManager } from '../../src/session/manager.ts'
import type { InboundMessage, OutboundMessage } from '../../src/session/port.ts'
import { MemoryStore } from '../../src/store/index.ts'
import { createStandardTree } from '../../src/tree/standard-tree.ts'
import { ManagementTree } from '../../src/tree/tree.ts'
import type { NodeValue } from '../../src/tree/types.ts'
import { accountNodes } from '../fixtures/tree/trees.ts'
import { md5Digest, AUTH_MD5 } from '../peers/auth.ts'
import { buildMessage, parseMessage, type OutCommand, type ParsedCommand, type ParsedMessage } from '../peers/syncml.ts'

export interface FakeClock {
  now(): number
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
  /** Moves time on, running every timer that falls due, in order. */
  advance(ms: number): void
  /** Timers still waiting. */
  readonly pending: number
}

export function fakeClock(start = 1_700_000_000_000): FakeClock {
  let now = start
  let seq = 0
  const timers = new Map<number, { at: number; callback: () => void }>()
  return {
    now: () => now,
    setTimeout(callback, ms) {
      const id = ++seq
      timers.set(id, { at: now + Math.max(0, ms), callback })
      return id
    },
    clearTimeout(handle) {
      timers.delete(handle as number)
    },
    advance(ms) {
      const until = now + ms
      for (;;) {
        let next: [number, { at: number; callback: () => void }] | undefined
        for (const entry of timers) if (entry[1].at <= until && (next === undefined || entry[1].at < next[1].at)) next = entry
        if (next === undefined) break
        timers.delete(next[0])
        now = next[1].at
        next[1].callback()
      }
      now = until
    },
    get pending() {
      return timers.size
    },
  }
}

export interface CapturedLog {
  logger: Logger
  lines: Array<Record<string, unknown>>
  /** Every line as text, for "this never appears" checks. */
  text(): string
}

export function captureLog(level: 'debug' | 'info' = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = []
  const logger = createLogger({ level, write: (line) => lines.push(JSON.parse(line) as Record<string, unknown>) })
  return { logger, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') }
}

export async function memoryState(store = new MemoryStore()): Promise<{ state: AgentState; store: MemoryStore }> {
  const opened = await AgentState.open(store, (n) => new Uint8Array(n).fill(7))
  if (!opened.ok) throw new Error(opened.error)
  return { state: opened.state, store }
}

/** Lets queued promise callbacks run (the monitor's poll loop chains a few). */
export async function settle(rounds = 20): Promise<void> {
  for (let k = 0; k < rounds; k++) await Promise.resolve()
}

// ---------------------------------------------------------------------------------------------------------------
// A whole device in memory: the real session engine, tree and codec, GwMO installed, a captured `send`.


export const DEVICE = 'mac:01-ab-34-ef-69-0c'
/** The SRVCRED secret of every account of `accountNodes` (test/fixtures/tree/trees.ts). */
export const SERVER_SECRET = 'server-secret'

export interface PartySpec {
  x: string
  serverId: string
  role?: 'gateway'
}

export interface WorldOptions {
  accounts?: PartySpec[]
  acceptDetectionFrom?: 'bootstrapped' | 'any'
  location?: NetworkLocation | Error
  config?: Partial<GwmoConfig>
  /** Reuse the stores of an earlier world (a restart). */
  stores?: { tree: MemoryStore; state: MemoryStore }
}

export interface SentMessage {
  to: string
  out: OutboundMessage
  message: ParsedMessage
}

export interface World {
  tree: ManagementTree
  state: AgentState
  stores: { tree: MemoryStore; state: MemoryStore }
  sessions: SessionManager
  gwmo: Gwmo
  clock: FakeClock
  log: CapturedLog
  sent: SentMessage[]
  source: LocationSource & { set(v: NetworkLocation | Error): void }
  /** Everything sent to a party so far. */
  to(party: string): SentMessage[]
  /** Every payload the device sent, as text. */
  wire(): string
  /** Lets the work the device started (alerts queued, sessions opened) run to its end. */
  settle(): Promise<void>
  party(serverId: string): PartyDriver
  restart(options?: Omit<WorldOptions, 'stores' | 'accounts'>): Promise<World>
  stop(): Promise<void>
}

export interface PushOptions {
  sessionId?: string
  msgId?: string
  auth?: 'good' | 'bad' | 'none'
  final?: boolean
  /** Leave the session open (by default the party closes it once the device has answered). */
  keepOpen?: boolean
}

export interface PartyDriver {
  /**
   * Pushes a message to the device as this party; returns what the device sent to the party in answer. The
   * party then closes the session (unless `keepOpen`), as `closeSession` does.
   */
  push(commands: OutCommand[], options?: PushOptions): Promise<SentMessage[]>
  /**
   * Answers a message of the device (its last one to this party by default) as a party closing the session:
   * 212 for its SyncHdr, 200 for each command, Final, good credentials.
   */
  closeSession(answering?: SentMessage): Promise<SentMessage[]>
  /** Answers a message of the device (its last one by default): Statuses as `closeSession`, then `commands`. */
  respond(commands: OutCommand[], answering?: SentMessage): Promise<SentMessage[]>
  /** Closes every session the device opened with this party, the ones it opens next included, until it stops. */
  closeAll(): Promise<void>
}

function settableSource(initial: NetworkLocation | Error): LocationSource & { set(v: NetworkLocation | Error): void } {
  let value = initial
  return {
    set(v) {
      value = v
    },
    read: async () => {
      if (value instanceof Error) throw value
      return value
    },
  }
}

function counterRandom(): (n: number) => Uint8Array {
  let k = 0
  return (n) => {
    const bytes = new Uint8Array(n)
    for (let i = 0; i < n; i++) bytes[i] = (k++ * 97 + 13) & 0xff
    return bytes
  }
}

export async function gwmoWorld(options: WorldOptions = {}): Promise<World> {
  const stores = options.stores ?? { tree: new MemoryStore(), state: new MemoryStore() }
  const opened = await openTree(stores.tree, options.accounts ?? [])
  const { state } = await memoryState(stores.state)
  const clock = fakeClock()
  const log = captureLog('debug')
  const sent: SentMessage[] = []
  const sessions = createSessionManager({
    deviceId: DEVICE,
    tree: opened,
    state,
    send: async (out) => {
      const text = Buffer.from(out.payload).toString('utf8')
      const parsed = parseMessage(text)
      if (!parsed.ok) throw new Error(`the device sent an unreadable message: ${parsed.error}`)
      sent.push({ to: out.to, out, message: parsed.message })
    },
    logger: log.logger,
    clock,
    random: counterRandom(),
  })
  const source = settableSource(options.location ?? { addresses: ['192.0.2.7'], defaultGateway: '192.0.2.1' })
  const gwmo = installGwmo({
    sessions,
    tree: opened,
    state,
    deviceId: DEVICE,
    config: {
      acceptDetectionFrom: options.acceptDetectionFrom ?? 'bootstrapped',
      location: { pollSeconds: 30 },
      ...options.config,
    },
    location: source,
    clock,
    logger: log.logger,
  })
  const drivers = new Map<string, PartyDriver>()
  const settle = async () => {
    for (let k = 0; k < 10; k++) await new Promise<void>((resolve) => setImmediate(resolve))
  }
  const world: World = {
    tree: opened,
    state,
    stores,
    sessions,
    gwmo,
    clock,
    log,
    sent,
    source,
    to: (party) => sent.filter((s) => s.to === party),
    wire: () => sent.map((s) => Buffer.from(s.out.payload).toString('utf8')).join('\n'),
    settle,
    party: (serverId) => {
      let driver = drivers.get(serverId)
      if (driver === undefined) drivers.set(serverId, (driver = partyDriver(world, serverId)))
      return driver
    },
    restart: async (more = {}) => {
      await world.stop()
      return gwmoWorld({ ...options, ...more, stores, accounts: [] })
    },
    stop: async () => {
      await gwmo.stop()
      await sessions.stop()
    },
  }
  return world
}

async function openTree(store: MemoryStore, accounts: PartySpec[]): Promise<ManagementTree> {
  const opened = await ManagementTree.open(store, {
    factory: () => {
      const tree = createStandardTree({ devId: DEVICE, man: 'Acme', mod: 'Sensor 1', lang: 'en-US' })
      for (const spec of accounts) {
        const tx = tree.begin()
        const extra: [string, NodeValue][] = spec.role ? [['Ext/GwMO/Role', { format: 'chr', data: spec.role }]] : []
        for (const [rel, value] of accountNodes({ x: spec.x, serverId: spec.serverId, extra })) {
          const status = tx.add(`./DMAcc/${spec.x}/${rel}`, value, 'device')
          if (status !== 200) throw new Error(`account ${spec.x}: ${rel} → ${status}`)
        }
        tx.replace(`./DMAcc/${spec.x}?prop=ACL`, { format: 'chr', data: `Get=${spec.serverId}&Replace=${spec.serverId}` }, 'device')
        const committed = tx.commit()
        if (!committed.ok) throw new Error(committed.failure.messages.join('; '))
      }
      return tree
    },
  })
  if (!opened.ok) throw new Error(opened.error)
  return opened.tree
}

/** The SRVCRED nonce stored for a party (its AAuthData; none stored is the empty nonce): where a party starts. */
function storedNonce(tree: ManagementTree, serverId: string): Uint8Array {
  for (const x of tree.children('./DMAcc') ?? []) {
    const id = tree.get(`./DMAcc/${x}/ServerID`, 'device').value?.data
    if (id !== serverId) continue
    const data = tree.readSecret(`./DMAcc/${x}/AppAuth/2/AAuthData`)
    return data === undefined ? new Uint8Array(0) : typeof data === 'string' ? new Uint8Array(Buffer.from(data)) : data
  }
  return new Uint8Array(0)
}

/** The nonce the device handed out on its Status for our SyncHdr, if any (binding.md §6: in every message). */
function handedNonce(message: ParsedMessage): Uint8Array | undefined {
  const next = message.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')?.chal?.nextNonce
  return next === undefined ? undefined : new Uint8Array(Buffer.from(next, 'base64'))
}

/** Whether a message of the device refuses ours (401/407 on our SyncHdr). */
function refuses(message: ParsedMessage): boolean {
  const code = message.commands.find((c) => c.name === 'Status' && c.cmdRef === '0')?.data
  return code === '401' || code === '407'
}

/**
 * A party as binding.md §6 has it: each message carries a Cred made with the nonce of the device's last message
 * to it (the first one, the nonce the device stored for it), and a refused push is sent again once with the
 * refusal's nonce.
 */
function partyDriver(world: World, serverId: string): PartyDriver {
  let pushed = 0
  let nonce: Uint8Array | undefined
  /** This party's last MsgID in each session. */
  const msgIds = new Map<string, number>()
  const answered = new Set<SentMessage>()
  const send = async (xml: string) => {
    const before = world.sent.length
    const inbound: InboundMessage = {
      channel: 'dm',
      payload: new Uint8Array(Buffer.from(xml, 'utf8')),
      contentType: 'application/vnd.syncml.dm+xml',
      properties: {},
    }
    await world.sessions.receive(inbound)
    await world.settle()
    const replies = world.sent.slice(before).filter((s) => s.to === serverId)
    for (const reply of replies) nonce = handedNonce(reply.message) ?? nonce
    return replies
  }
  const cred = (auth: PushOptions['auth']) => {
    if (auth === 'none') return undefined
    const secret = auth === 'bad' ? 'wrong-secret' : SERVER_SECRET
    nonce ??= storedNonce(world.tree, serverId)
    return { type: AUTH_MD5, data: md5Digest(serverId, secret, nonce) }
  }
  const driver: PartyDriver = {
    async push(commands, options = {}) {
      pushed += 1
      const sessionId = options.sessionId ?? `7${pushed}`
      const msgId = options.msgId ?? String((msgIds.get(sessionId) ?? 0) + 1)
      msgIds.set(sessionId, Number(msgId))
      const hdr = {
        sessionId,
        msgId,
        target: DEVICE,
        source: serverId,
        locName: serverId,
        cred: cred(options.auth ?? 'good'),
      }
      let replies = await send(buildMessage(hdr, commands, options.final ?? true).xml)
      const refusal = replies.find((r) => r.message.hdr.sessionId === sessionId)
      if ((options.auth ?? 'good') === 'good' && refusal !== undefined && refuses(refusal.message)) {
        // Its nonce was spent: once more with the refusal's (binding.md §6).
        const again = (msgIds.get(sessionId) ?? 0) + 1
        msgIds.set(sessionId, again)
        replies = await send(buildMessage({ ...hdr, msgId: String(again), cred: cred('good') }, commands, options.final ?? true).xml)
      }
      const answer = replies.find((r) => r.message.hdr.sessionId === sessionId)
      if (!options.keepOpen && answer !== undefined) await driver.closeSession(answer)
      return replies
    },
    async closeAll() {
      for (let guard = 0; guard < 20; guard++) {
        const last = world.to(serverId).at(-1)
        if (last === undefined || answered.has(last)) return
        await driver.closeSession(last)
      }
      throw new Error(`the device keeps opening sessions with ${serverId}`)
    },
    closeSession(answering) {
      return driver.respond([], answering)
    },
    respond(commands, answering) {
      const last = answering ?? world.to(serverId).at(-1)
      if (last === undefined) throw new Error(`nothing was sent to ${serverId}`)
      answered.add(last)
      const m = last.message
      const statuses: OutCommand[] = [
        { name: 'Status', msgRef: m.hdr.msgId, cmdRef: '0', cmd: 'SyncHdr', data: '212', targetRefs: [m.hdr.target], sourceRefs: [m.hdr.source] },
        ...m.commands
          .filter((c: ParsedCommand) => c.name !== 'Status' && c.name !== 'Results')
          .map((c: ParsedCommand): OutCommand => ({ name: 'Status', msgRef: m.hdr.msgId, cmdRef: c.cmdId, cmd: c.name, data: '200' })),
      ]
      const msgId = (msgIds.get(m.hdr.sessionId) ?? 0) + 1
      msgIds.set(m.hdr.sessionId, msgId)
      const hdr = { sessionId: m.hdr.sessionId, msgId: String(msgId), target: DEVICE, source: serverId, locName: serverId, cred: cred('good') }
      return send(buildMessage(hdr, [...statuses, ...commands]).xml)
    },
  }
  return driver
}

/** The Generic Alerts (1226) of a message, with their type and data. */
export function genericAlerts(message: ParsedMessage): Array<{ type: string; format?: string; source?: string; target?: string; data: string }> {
  return message.commands
    .filter((c) => c.name === 'Alert' && c.data === '1226')
    .flatMap((c) => c.items.map((i) => ({ type: (i.meta.type ?? '').trim(), format: i.meta.format, source: i.source, target: i.target, data: i.data ?? '' })))
}

/** The Status the device gave a command of ours (by CmdID), its code. */
export function statusFor(message: ParsedMessage, cmdRef: string): string | undefined {
  return message.commands.find((c) => c.name === 'Status' && c.cmdRef === cmdRef && c.cmd !== 'SyncHdr')?.data
}
