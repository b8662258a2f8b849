import type { MountedNode } from '../tree/mount.ts'
import type { Transaction } from '../tree/types.ts'
import type { ExternalWrite, MadeWrite } from './external-calls.ts'
import type { MessageTransaction } from './handlers/context.ts'
import { isSuccess } from './reply.ts'

/** Counts the tree changes an inbound message made, whatever ran them (handlers, alert handlers, Atomic). */
export interface WriteCounter {
  writes: number
}

/**
 * A transaction seen as the message's tree operations: every successful write is counted (a message that
 * changed the tree is flushed before its reply leaves, binding.md §3). `begin` nests one level: inside an
 * Atomic, transactions do not nest further. Follow-ups registered with `afterCommit` join `followUps` only
 * when their transaction commits (a nested one hands them to its parent), so a rolled-back Atomic drops its own.
 * Writes to external nodes stay with the transaction they were deferred in (`writes`): the message's or an Atomic's.
 */
export function messageOps(
  tx: Transaction, counter: WriteCounter, nestable: boolean, followUps: Array<() => void>,
  external: (uri: string) => MountedNode | undefined,
): MessageTransaction {
  const counted = (status: number) => {
    if (isSuccess(status)) counter.writes += 1
    return status
  }
  const pending: Array<() => void> = []
  const writes: ExternalWrite[] = []
  const made: MadeWrite[] = []
  return {
    get: (uri, principal) => tx.get(uri, principal),
    add: (uri, value, principal) => counted(tx.add(uri, value, principal)),
    replace: (uri, value, principal) => counted(tx.replace(uri, value, principal)),
    delete: (uri, principal) => counted(tx.delete(uri, principal)),
    exec: (uri, data, principal, correlator, signal) => {
      const status = tx.exec(uri, data, principal, correlator, signal)
      return typeof status === 'number' ? counted(status) : status.then(counted)
    },
    readSecret: (uri) => tx.readSecret(uri),
    children: (uri) => tx.children(uri),
    begin: () => (nestable ? messageOps(tx.begin(), counter, false, pending, external) : undefined),
    afterCommit: (followUp) => void pending.push(followUp),
    external,
    deferWrite: (write) => void writes.push(write),
    writes,
    madeEarly: (early) => void made.push(...early),
    made,
    commit: () => {
      const committed = tx.commit()
      if (committed.ok) followUps.push(...pending.splice(0))
      return committed
    },
    rollback: () => {
      pending.length = 0
      writes.length = 0
      tx.rollback()
    },
  }
}
