/**
 * The management tree's public contract (OMA DM TND 1.2). Operations return SyncML status codes that go
 * straight into `<Status>`; nothing is thrown across this boundary.
 */

/** A SyncML status code (200, 400, 401, 404, 405, 406, 418, 425, 500, 507…). */
export type SyncMLStatus = number

/**
 * Who performs an operation. A DM party is named by its ServerID and is held to the ACLs; `'device'` is the
 * agent itself (factory and local bootstrap, its own bookkeeping) and is not. Even the device never reads
 * `AAuthSecret` or `AAuthData` through `get`: those are read through `readSecret`.
 */
export type Principal = { serverId: string } | 'device'

/** DM TND 1.2 formats. `node` marks an interior node. */
export type NodeFormat = 'b64' | 'bin' | 'bool' | 'chr' | 'int' | 'node' | 'null' | 'xml' | 'date' | 'time' | 'float'

export interface NodeValue {
  format: NodeFormat
  /** MIME type of a leaf (`text/plain` when absent), DDF name of an interior node. */
  type?: string
  /** Leaf data; an interior node has none on write, and its child names joined by `/` on read. */
  data?: string | Uint8Array
}

export interface GetResult {
  status: SyncMLStatus
  value?: NodeValue
}

/** The operations a DM command maps to, with their DM 1.2 status codes. */
export interface TreeOps {
  get(uri: string, principal: Principal): GetResult
  /** 200; 418 exists; 404 parent missing where it cannot be created implicitly; 405 not allowed; 425 ACL. */
  add(uri: string, value: NodeValue, principal: Principal): SyncMLStatus
  replace(uri: string, value: NodeValue, principal: Principal): SyncMLStatus
  delete(uri: string, principal: Principal): SyncMLStatus
  /** An external node's Exec (external.ts) gives a promise, and `signal` to its callback. */
  exec(uri: string, data: string | Uint8Array | undefined, principal: Principal, correlator?: string, signal?: AbortSignal): SyncMLStatus | Promise<SyncMLStatus>
  /** Reads a node that `get` never reveals (`AAuthSecret`, `AAuthData`); for the device's own use. */
  readSecret(uri: string): string | Uint8Array | undefined
  /** Child names of an interior node, or undefined when there is no such interior node. */
  children(uri: string): string[] | undefined
}

/**
 * Takes a commit back out of the tree: each node it changed returns to what it was, unless a later commit has
 * changed that node since (that change stands). For a commit whose flush failed: what the store does not hold
 * is not kept either, so no party is told of, or reads, a change the device could not make durable.
 */
export type CommitUndo = () => void

/** The reason a commit was refused: each message names the tree path it is about. */
export interface ValidationFailure {
  status: SyncMLStatus
  messages: string[]
}

/**
 * A set of changes applied all together or not at all (DM `Atomic`, a bootstrap message, one message's writes).
 * Transactions nest: a commit of an inner one folds it into the outer one.
 */
export interface Transaction extends TreeOps {
  /**
   * Opens a transaction nested in this one (DM `Atomic` inside a message). While it is open this one refuses
   * writes (500); opening another rolls the open one back.
   */
  begin(): Transaction
  /**
   * Validates every changed account, and holds each account a party added to the rules of `./DMAcc` (binding.md
   * §6: a gateway's, given its own server's ACL); on failure nothing is applied and the failure says why. A
   * top-level commit that changed the tree also gives `undo`, for a change that cannot be made durable
   * (`CommitUndo`).
   */
  commit(): { ok: true; undo?: CommitUndo } | { ok: false; failure: ValidationFailure }
  rollback(): void
}
