/**
 * Transactions: a working copy over the tree (or over the enclosing transaction) that is applied on commit
 * only if every account it touches is still valid, and discarded on rollback. DM `Atomic`, a bootstrap
 * message and one message's writes each run in one (Anjay's `*_transaction.c` pattern: snapshot, apply,
 * validate, commit or roll back).
 */
import { touchedAccounts, validateAccounts } from './account-rules.ts'
import { settleCreatedAccounts } from './dmacc-access.ts'
import type { NodeView } from './node.ts'
import { addOp, childrenOp, deleteOp, execOp, getOp, readSecretOp, replaceOp, type TreeContext } from './operations.ts'
import { Overlay } from './overlay.ts'
import type { CommitUndo, GetResult, NodeValue, Principal, SyncMLStatus, Transaction, ValidationFailure } from './types.ts'

export type CommitResult = { ok: true; undo?: CommitUndo } | { ok: false; failure: ValidationFailure }

/** What a top-level transaction needs from its tree. */
export interface TransactionRoot extends TreeContext {
  readonly committed: NodeView
  /** Merges a top-level transaction's changes into the committed tree, validating the result first. */
  applyCommit(work: Overlay): CommitResult
}

/** The status of an operation on a transaction that can no longer take it (finished, or a nested one open). */
const UNUSABLE = 500

/** A commit refused with `status`, each message naming the tree path it is about. */
export function refused(status: SyncMLStatus, messages: string[]): CommitResult {
  return { ok: false, failure: { status, messages } }
}

/** Every commit validates the accounts its changes touch, and is refused (500) if any breaks a rule. */
export function validateChanges(work: Overlay): CommitResult {
  const messages = validateAccounts(work, touchedAccounts(work.changes.keys()))
  return messages.length > 0 ? refused(500, messages) : { ok: true }
}

export class TreeTransaction implements Transaction {
  readonly #root: TransactionRoot
  readonly #outer: TreeTransaction | undefined
  readonly #work: Overlay
  #open = true
  #inner: TreeTransaction | undefined

  constructor(root: TransactionRoot, outer: TreeTransaction | undefined) {
    this.#root = root
    this.#outer = outer
    this.#work = new Overlay(outer ? outer.#work : root.committed)
  }

  begin(): Transaction {
    this.#inner?.rollback()
    const inner = new TreeTransaction(this.#root, this)
    if (this.#open) this.#inner = inner
    else inner.#open = false
    return inner
  }

  get(uri: string, principal: Principal): GetResult {
    return this.#open ? getOp(this.#work, this.#root, uri, principal) : { status: UNUSABLE }
  }

  add(uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
    return this.#writable() ? addOp(this.#work, this.#root, uri, value, principal) : UNUSABLE
  }

  replace(uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
    return this.#writable() ? replaceOp(this.#work, this.#root, uri, value, principal) : UNUSABLE
  }

  delete(uri: string, principal: Principal): SyncMLStatus {
    return this.#writable() ? deleteOp(this.#work, this.#root, uri, principal) : UNUSABLE
  }

  /** Exec handlers act at once, outside the transaction: only the tree changes are transactional. */
  exec(uri: string, data: string | Uint8Array | undefined, principal: Principal, correlator?: string, signal?: AbortSignal): SyncMLStatus | Promise<SyncMLStatus> {
    return this.#writable() ? execOp(this.#work, this.#root, uri, data, principal, correlator, signal) : UNUSABLE
  }

  readSecret(uri: string): string | Uint8Array | undefined {
    return this.#open ? readSecretOp(this.#work, uri) : undefined
  }

  children(uri: string): string[] | undefined {
    return this.#open ? childrenOp(this.#work, uri) : undefined
  }

  commit(): CommitResult {
    if (!this.#open) return refused(UNUSABLE, ['.: the transaction is already finished'])
    this.rollback() // closes this one and any nested one still open; the work stays, for the merge below
    const outer = this.#outer
    // Accounts a party added: refused unless a gateway's; the ACL of their own server once they reach the tree.
    const problems = settleCreatedAccounts(this.#work, outer === undefined)
    if (problems.length > 0) return refused(425, problems)
    if (outer === undefined) return this.#root.applyCommit(this.#work)
    const result = validateChanges(this.#work)
    if (result.ok) outer.#work.absorb(this.#work)
    return result
  }

  rollback(): void {
    if (!this.#open) return
    this.#inner?.rollback()
    this.#open = false
    const outer = this.#outer
    if (outer !== undefined && outer.#inner === this) outer.#inner = undefined
  }

  #writable(): boolean {
    return this.#open && this.#inner === undefined
  }
}
