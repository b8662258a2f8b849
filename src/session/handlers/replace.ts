import type { ItemCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'
import { forEachItem, nodeValue, UNSUPPORTED_FORMAT } from './items.ts'

/** Replace (OMA DM Protocol 1.2, 6.6.11): one Status per item with the tree's code (404 missing, 405, 425…). */
export function handleReplace(cmd: ItemCommand, ctx: HandlerContext): void {
  forEachItem(cmd, ctx, { write: true }, (item, target) => {
    const value = nodeValue(cmd, item)
    return value === undefined ? UNSUPPORTED_FORMAT : ctx.ops.replace(target, value, ctx.principal)
  })
}
