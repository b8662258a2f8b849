import type { Results } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'

/** A device never asked the party for anything, so Results from it are not supported (406). */
export function handleResults(cmd: Results, ctx: HandlerContext): void {
  ctx.reply.status(cmd, 406)
}
