import type { Command, Status } from '../codec/syncml-model.ts'
import type { Logger } from '../log.ts'
import type { GenericAlertSpec } from './agent-state.ts'
import type { Engine } from './engine.ts'
import { runWrites, setBack, type ExternalWrite } from './external-calls.ts'
import { dispatchCommand } from './handlers/index.ts'
import type { HandlerContext, MessageOps, PartyInfo, SessionInfo } from './handlers/context.ts'
import { messageOps, type WriteCounter } from './message-ops.ts'
import type { ReplyBuilder, ReplyEntry } from './reply.ts'

export interface RunOptions {
  reply: ReplyBuilder
  /** The session's logger (it names the party and the session). */
  logger: Logger
  party: PartyInfo
  session: SessionInfo
  consumeStatus(status: Status): void
  /** Adds a Generic Alert to `into` (the reply or the scope being built). */
  sendGenericAlert(alert: GenericAlertSpec, into: ReplyBuilder): Promise<void>
  /**
   * Whether the answer holding `entries` can fit the message it goes in, once whatever may give way has (Results,
   * queued alerts: `fitToSize`). Asked before the commit: a message whose answer cannot fit is not committed.
   */
  fits?(entries: ReplyEntry[]): boolean
}

export interface RunResult {
  /** The party sent Session Abort (1223). */
  aborted: boolean
  /** The answer could not fit (`RunOptions.fits`): nothing of the message was committed. */
  tooLarge?: boolean
  /** What the handlers asked to run once the message's changes are durable (MessageOps.afterCommit). */
  followUps: Array<() => void>
}

/**
 * Runs the commands of one inbound message in one transaction (binding.md §3, durability), then commits and
 * flushes. If the validator refuses the commit, or the store cannot take it (a full or failing disk), nothing
 * is applied and every tree-changing command's 2xx becomes 500, with the reason logged (the validator's
 * messages each name their tree path). A message whose answer could not fit its message even with only its
 * Statuses (binding.md §11) is rolled back whole before the commit (`tooLarge`).
 */
export function runCommands(engine: Engine, body: Command[], options: RunOptions): Promise<RunResult> {
  return engine.treeWork.run(async () => {
    const counter: WriteCounter = { writes: 0 }
    const followUps: Array<() => void> = []
    const tree = engine.tree
    const tx = messageOps(tree.begin(), counter, true, followUps, (uri) => tree.external?.(uri))
    let aborted = false
    const { logger } = options
    const quietly = (kind: string, write: (suppressed: number) => void) =>
      engine.quietLog.note(`${options.party.serverId}\u0000${kind}`, engine.clock.now(), write)
    const contextFor = (reply: ReplyBuilder, ops: MessageOps): HandlerContext => ({
      ops,
      // The party is the principal the tree checks ACLs against (its ServerID).
      principal: options.party,
      reply,
      alerts: engine.alerts,
      party: options.party,
      session: options.session,
      logger,
      signal: engine.signal,
      consumeStatus: options.consumeStatus,
      abortSession: () => {
        aborted = true
      },
      get aborted() {
        return aborted
      },
      sendGenericAlert: (alert) => options.sendGenericAlert(alert, reply),
      quietly,
      dispatch: async (command, innerReply, innerOps) => {
        await dispatchCommand(command, contextFor(innerReply, innerOps))
      },
    })
    const ctx = contextFor(options.reply, tx)
    try {
      for (const command of body) {
        if (aborted) break
        await dispatchCommand(command, ctx)
      }
    } catch (error) {
      tx.rollback()
      throw error
    }
    // What an Atomic wrote outside the tree goes back with the message's changes when they do not happen.
    const early = tx.made
    if (options.fits !== undefined && !options.fits(options.reply.entries)) {
      tx.rollback()
      await setBack(early, logger)
      return { aborted, tooLarge: true, followUps: [] }
    }
    const committed = tx.commit()
    if (!committed.ok) {
      quietly('commit', (suppressed) => logger.warn('commit refused by validation', { problems: committed.failure.messages, suppressed }))
      failWrites(options.reply.entries)
      await setBack(early, logger)
      return { aborted, followUps: [] }
    }
    if (counter.writes === 0) return { aborted, followUps }
    // binding.md §3: a 200 for a change leaves only once the change is durable. Flushed before the next message's
    // commands run, so that a failed flush takes back this message's changes alone.
    try {
      await engine.tree.flush()
    } catch (error) {
      committed.undo?.()
      logger.error('changes not stored, so not made: every write answered 500', { error })
      failWrites(options.reply.entries)
      await setBack(early, logger)
      return { aborted, followUps: [] }
    }
    await writeOutside(engine, tx.writes, logger)
    return { aborted, followUps }
  })
}

/**
 * binding.md §8: the message's writes to external nodes, once its changes are durable, in command order. A stored
 * leaf whose write failed is set back to its value before, so that no Get shows a value that was never written.
 */
async function writeOutside(engine: Engine, writes: readonly ExternalWrite[], logger: Logger): Promise<void> {
  if (writes.length === 0) return
  const failures = await runWrites(writes, logger)
  let restored = false
  for (const w of failures) {
    if (w.stored === undefined) continue
    restored = engine.tree.replace(w.mounted.uri, w.stored, 'device') === 200 || restored
  }
  if (restored) await engine.tree.flush().catch((error: unknown) => logger.error('tree flush failed', { error }))
}

function failWrites(entries: ReplyEntry[]): void {
  for (const entry of entries) {
    if (entry.kind === 'status' && entry.write) {
      entry.status.data = '500'
      entry.write = false
    }
  }
}
