import type { ItemCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'
import { forEachItem } from './items.ts'

/**
 * Exec (OMA DM Protocol 1.2, 6.6.6): the tree runs the handler registered for the node (405 when none is).
 * It counts as a tree change: an Exec handler may write, and its 200 must be as durable as a Replace's.
 */
export function handleExec(cmd: ItemCommand, ctx: HandlerContext): void {
  forEachItem(cmd, ctx, { write: true }, (item, target) => ctx.ops.exec(target, item.data, ctx.principal, cmd.correlator))
}
