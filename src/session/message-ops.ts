import type { Transaction } from '../tree/types.ts'
import type { MessageTransaction } from './handlers/context.ts'
import { isSuccess } from './reply.ts'

/** Counts the tree changes an inbound message made, whatever ran them (handlers, alert handlers, Atomic). */
export interface WriteCounter {
  writes: number
}


/**
 * A transaction seen as the message's tree operations: every successful write is counted (a message that
 * changed the tree is flushed before its reply leaves, binding.md §3). `begin` nests one level: inside an
 * Atomic, transactions do not nest further.
 */
export function messageOps(tx: Transaction, counter: WriteCounter, nestable: boolean): MessageTransaction {
  const counted = (status: number) => {
    if (isSuccess(status)) counter.writes += 1
    return status
  }
  return {
    get: (uri, principal) => tx.get(uri, principal),
    add: (uri, value, principal) => counted(tx.add(uri, value, principal)),
    replace: (uri, value, principal) => counted(tx.replace(uri, value, principal)),
    delete: (uri, principal) => counted(tx.delete(uri, principal)),
    exec: (uri, data, principal) => counted(tx.exec(uri, data, principal)),
    readSecret: (uri) => tx.readSecret(uri),
    children: (uri) => tx.children(uri),
    begin: () => (nestable ? messageOps(tx.begin(), counter, false) : undefined),
    commit: () => tx.commit(),
    rollback: () => tx.rollback(),
  }
}
