/**
 * Nodes whose value or action lives outside the tree (binding.md §8, §9): a file, a program, a callback of a
 * program that embeds the agent, FUMO's operations. The tree keeps the node itself (its format, type and ACL), so
 * that every ACL, format and size rule applies to it as to any other node; the session calls these around the
 * message's transaction, never inside it (they are asynchronous, the tree is not).
 *
 * A callback answers a command's status by throwing `SyncMLStatusError` (src/errors.ts); any other thrown error or
 * rejected promise is `500`, logged once, never a crash.
 */
import type { NodeFormat } from './types.ts'

export type ExternalValue = string | Uint8Array

/** What a callback is told of the command it serves. */
export interface ExternalCall {
  /** The ServerID of the server whose command this is. */
  serverId: string
  /** The node's URI as the tree names it (`./Vendor/Sensors/CpuTemp`). */
  uri: string
  /** The Exec's `Correlator`, when it had one. */
  correlator?: string
  /** Aborted when the agent stops (and, for a program, at its timeout). */
  signal: AbortSignal
}

/** How an external node appears in the tree when it is mounted. */
export interface ExternalNodeShape {
  /** A leaf's DM TND format, or `node` for an interior node. */
  format: NodeFormat
  /** MIME type of a leaf (`text/plain` when absent). */
  type?: string
  /** DM ACL (`Get=*&Replace=<ServerID>`); a leaf without one gets `Get=*` and nothing more (binding.md §8). */
  acl?: string
  /** The initial value of a leaf whose value the tree itself keeps (no `get`), persisted like any leaf. */
  value?: string
  /** The largest value read or written, in bytes (413 beyond it); 4096 when absent. */
  maxBytes?: number
}

/** The callbacks behind an external node; each absent one leaves that command to the tree. */
export interface ExternalNode {
  /** Reads the value at each Get (absent: the tree's stored value is served). */
  get?(call: ExternalCall): Promise<ExternalValue>
  /**
   * Writes the value a Replace set, once the message's (or its `Atomic`'s) commands have all succeeded: resolved,
   * the Replace answers 200; rejected, 500 (inside an `Atomic`, the writes already made are set back with the
   * values `get` read before them, and the `Atomic` answers 507). Absent: the tree stores the value.
   */
  replace?(value: ExternalValue, call: ExternalCall): Promise<void>
  /**
   * Runs an Exec and resolves to its status: 200 or 500 when it is done, 202 when the work goes on and its end is
   * reported later in a Generic Alert carrying `call.correlator`, 417 while a previous Exec of the node still runs.
   */
  exec?(data: ExternalValue | undefined, call: ExternalCall): Promise<number>
}
