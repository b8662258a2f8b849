import type { Command, ContainerCommand } from '../../codec/syncml-model.ts'
import { runAtomicWrites, setBack } from '../external-calls.ts'
import type { ReplyEntry } from '../reply.ts'
import type { HandlerContext } from './context.ts'

/** SyncML status codes of Atomic (OMA DM RepPro 1.2, 10.3). */
const ATOMIC_FAILED = 507
const ROLLED_BACK = 216
const NOT_EXECUTED = 215
/** A nested Atomic is refused with 500 (and so fails its parent), as deployed DM clients answer it. */
const NESTED_ATOMIC = 500

const isSuccess = (code: string) => code.startsWith('2')

/**
 * Atomic (OMA DM Protocol 1.2, 6.6.2): the commands run in a nested transaction, all or nothing. If one fails,
 * the transaction rolls back and the Atomic gets 507; commands that had succeeded get 216 (rolled back), the
 * failing one its own code, and those not reached 215. Results of a rolled-back Atomic are dropped. Its writes to
 * external nodes (binding.md §8) are made once all its commands have succeeded; one that fails fails the Atomic,
 * and the ones already made are set back.
 */
export async function handleAtomic(cmd: ContainerCommand, ctx: HandlerContext): Promise<void> {
  const tx = ctx.ops.begin()
  if (tx === undefined) {
    ctx.reply.status(cmd, NESTED_ATOMIC)
    return
  }
  const scope = ctx.reply.scope()
  let failedAt = -1
  for (const [index, inner] of cmd.commands.entries()) {
    if (ctx.aborted) break
    const failuresBefore = scope.failures
    // Inside an Atomic, transactions do not nest further: an inner Atomic (even within a Sequence) gets 500.
    await ctx.dispatch(inner, scope, tx)
    if (scope.failures > failuresBefore) {
      failedAt = index
      break
    }
  }
  const written = failedAt < 0 ? await runAtomicWrites(tx.writes, ctx.logger) : { ok: false as const }
  if (written.ok) {
    const committed = tx.commit()
    if (committed.ok) {
      ctx.ops.madeEarly(written.made)
      return ctx.reply.containerDone(cmd, scope)
    }
    await setBack(written.made, ctx.logger)
    ctx.quietly('atomic', (suppressed) =>
      ctx.logger.warn('atomic refused by validation', { cmdId: cmd.cmdId, problems: committed.failure.messages, suppressed }))
  } else {
    tx.rollback()
  }
  ctx.reply.status(cmd, ATOMIC_FAILED)
  ctx.reply.adopt(rolledBack(scope.entries))
  for (const notReached of failedAt < 0 ? [] : cmd.commands.slice(failedAt + 1)) notExecuted(notReached, ctx)
}

/** The scope's entries after a rollback: successes become 216, failures keep their code, Results go. */
function rolledBack(entries: ReplyEntry[]): ReplyEntry[] {
  const out: ReplyEntry[] = []
  for (const entry of entries) {
    if (entry.kind !== 'status') continue
    const data = isSuccess(entry.status.data) ? String(ROLLED_BACK) : entry.status.data
    out.push({ kind: 'status', status: { ...entry.status, data }, write: false })
  }
  return out
}

function notExecuted(command: Command, ctx: HandlerContext): void {
  if (command.kind === 'Status') return
  ctx.reply.status(command, NOT_EXECUTED)
}
