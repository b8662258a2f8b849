import type { Logger } from '../log.ts'
import type { OutboundMessage } from './port.ts'
import type { MountedNode } from '../tree/mount.ts'
import type { Transaction, TreeOps } from '../tree/types.ts'
import type { AgentState } from './agent-state.ts'
import type { AlertQueue } from './alert-queue.ts'
import type { AlertRegistry } from './alerts.ts'
import type { SessionConstants } from './constants.ts'
import type { NonceIssuer } from './nonces.ts'
import type { Admission } from './admission.ts'
import type { PartyRateLimiter, QuietLog } from '../rate-limit.ts'
import type { Serial } from './serial.ts'

/** Injected time (MQTT.js KeepaliveManager style), so tests drive the engine with a fake clock. */
export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

/** What the engine needs of the management tree (`ManagementTree` has it all). */
export interface SessionTree extends TreeOps {
  begin(): Transaction
  /** Resolves once every committed change is durable. */
  flush(): Promise<void>
  /** The node mounted at `uri` (external.ts); none when the tree mounts nothing. */
  external?(uri: string): MountedNode | undefined
}

/** What every session of one engine shares. One object per engine: no module-level state. */
export interface Engine extends EngineCore {
  /** Who may enter, with which nonce (binding.md §6). */
  admission: Admission
}

/** The engine without its admission, which is built on it. */
export interface EngineCore {
  deviceId: string
  tree: SessionTree
  state: AgentState
  nonces: NonceIssuer
  alerts: AlertRegistry
  /** The persisted Generic Alerts of each party, bounded (binding.md §11). */
  alertQueue: AlertQueue
  constants: SessionConstants
  clock: Clock
  logger: Logger
  send(message: OutboundMessage): Promise<void>
  /** Answers to failed authentication, per party (binding.md §6). */
  authFailureAnswers: PartyRateLimiter
  /** Warnings a flood can trigger (per party and kind), logged at most once a second with a count of the rest. */
  quietLog: QuietLog
  /** Aborted when the engine stops: the callbacks of external nodes are told (external.ts). */
  signal: AbortSignal
  /** The tree work of inbound messages runs one message at a time. */
  treeWork: Serial
  /**
   * Nonce bookkeeping changed the tree or the agent state without saving them: have both saved later (see
   * `lazyFlushDelayMs`; the counter reservation and the unclean-stop guard cover a crash meanwhile).
   */
  bookkeeping(): void
  /** Saves the agent state; a failure is logged, never thrown (what was saved stays, the rest goes next time). */
  saveState(): Promise<void>
}
