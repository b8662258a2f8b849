/**
 * Transactions: a working copy over the tree (or over the enclosing transaction) that is applied on commit
 * only if every account it touches is still valid, and discarded on rollback. DM `Atomic`, a bootstrap
 * message and one message's writes each run in one (Anjay's `*_transaction.c` pattern: snapshot, apply,
 * validate, commit or roll back).
 */
import { touchedAccounts, validateAccounts } from './account-rules.ts'
import type { NodeView } from './node.ts'
import { addOp, childrenOp, deleteOp, execOp, getOp, readSecretOp, replaceOp, type TreeContext } from './operations.ts'
import { Overlay } from './overlay.ts'
import type { GetResult, NodeValue, Principal, SyncMLStatus, Transaction, ValidationFailure } from './types.ts'

export type CommitResult = { ok: true } | { ok: false; failure: ValidationFailure }

/** What a top-level transaction needs from its tree. */
export interface TransactionRoot extends TreeContext {
  readonly committed: NodeView
  /** Merges a top-level transaction's changes into the committed tree, validating the result first. */
  applyCommit(work: Overlay): CommitResult
}

/** The status of an operation on a transaction that can no longer take it (finished, or a nested one open). */
const UNUSABLE = 500

export class TreeTransaction implements Transaction {
  private readonly work: Overlay
  private open = true
  private inner: TreeTransaction | undefined

  constructor(
    private readonly root: TransactionRoot,
    private readonly outer: TreeTransaction | undefined,
  ) {
    this.work = new Overlay(outer ? outer.work : root.committed)
  }

  begin(): Transaction {
    this.inner?.rollback()
    const inner = new TreeTransaction(this.root, this)
    if (this.open) this.inner = inner
    else inner.open = false
    return inner
  }

  get(uri: string, principal: Principal): GetResult {
    if (!this.open) return { status: UNUSABLE }
    return getOp(this.work, this.root, uri, principal)
  }

  add(uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
    if (!this.writable()) return UNUSABLE
    return addOp(this.work, this.root, uri, value, principal)
  }

  replace(uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
    if (!this.writable()) return UNUSABLE
    return replaceOp(this.work, this.root, uri, value, principal)
  }

  delete(uri: string, principal: Principal): SyncMLStatus {
    if (!this.writable()) return UNUSABLE
    return deleteOp(this.work, this.root, uri, principal)
  }

  /** Exec handlers act at once, outside the transaction: only the tree changes are transactional. */
  exec(uri: string, data: string | Uint8Array | undefined, principal: Principal): SyncMLStatus {
    if (!this.writable()) return UNUSABLE
    return execOp(this.work, this.root, uri, data, principal)
  }

  readSecret(uri: string): string | Uint8Array | undefined {
    return this.open ? readSecretOp(this.work, uri) : undefined
  }

  children(uri: string): string[] | undefined {
    return this.open ? childrenOp(this.work, uri) : undefined
  }

  commit(): CommitResult {
    if (!this.open) return { ok: false, failure: { status: UNUSABLE, messages: ['.: the transaction is already finished'] } }
    this.inner?.rollback()
    this.finish()
    if (this.outer === undefined) return this.root.applyCommit(this.work)
    const messages = validateAccounts(this.work, touchedAccounts(this.work.changes.keys()))
    if (messages.length > 0) return { ok: false, failure: { status: 500, messages } }
    this.outer.work.absorb(this.work)
    return { ok: true }
  }

  rollback(): void {
    if (!this.open) return
    this.inner?.rollback()
    this.finish()
  }

  private writable(): boolean {
    return this.open && this.inner === undefined
  }

  private finish(): void {
    this.open = false
    if (this.outer?.inner === this) this.outer.inner = undefined
  }
}
