import type { UnknownCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'

/**
 * A command the DM profile does not define for a device (Sync, Map, Put…) gets 406; one too malformed to run
 * gets 400 (binding.md §3: never silence, and nothing malformed changes the tree).
 */
export function handleUnknown(cmd: UnknownCommand, ctx: HandlerContext): void {
  if (cmd.malformed !== undefined) {
    ctx.quietly('malformed', (suppressed) =>
      ctx.logger.warn('malformed command', { party: ctx.party.serverId, command: cmd.name, reason: cmd.malformed, suppressed }))
    ctx.reply.status(cmd, 400)
    return
  }
  ctx.reply.status(cmd, 406)
}
