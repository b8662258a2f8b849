import type { ItemCommand } from '../../codec/syncml-model.ts'
import { statusOfError } from '../../errors.ts'
import type { HandlerContext } from './context.ts'
import { BAD_REQUEST } from './items.ts'

/**
 * Exec (OMA DM Protocol 1.2, 6.6.6): the tree runs the handler registered for the node, or the Exec of the node
 * mounted there (awaited; 405 when there is neither). What a handler throws is its status (a thrown Error is 500,
 * logged once). It counts as a tree change: an Exec handler may write, and its 200 must be as durable as a Replace's.
 */
export async function handleExec(cmd: ItemCommand, ctx: HandlerContext): Promise<void> {
  for (const item of cmd.items) {
    const target = item.target?.locUri
    const refs = { targetRef: target, sourceRef: item.source?.locUri }
    if (target === undefined) {
      ctx.reply.status(cmd, BAD_REQUEST, refs)
      continue
    }
    let status: number
    try {
      status = await ctx.ops.exec(target, item.data, ctx.principal, cmd.correlator, ctx.signal)
    } catch (error) {
      status = statusOfError(error)
      ctx.logger.warn('exec failed', { uri: target, status, error })
    }
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      ctx.logger.warn('exec answered no status code', { uri: target, status: String(status) })
      status = 500
    }
    ctx.reply.status(cmd, status, { ...refs, write: true })
  }
}
