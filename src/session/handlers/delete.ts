import type { ItemCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'
import { forEachItem } from './items.ts'

/** Delete (OMA DM Protocol 1.2, 6.6.5): one Status per item with the tree's code. */
export function handleDelete(cmd: ItemCommand, ctx: HandlerContext): void {
  forEachItem(cmd, ctx, { write: true }, (_item, target) => ctx.ops.delete(target, ctx.principal))
}
