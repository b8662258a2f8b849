import type { ItemCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'
import { forEachItem, nodeValue, UNSUPPORTED_FORMAT } from './items.ts'

/** Add (OMA DM Protocol 1.2, 6.6.1): one Status per item with the tree's code (418 exists, 404, 405, 425…). */
export function handleAdd(cmd: ItemCommand, ctx: HandlerContext): void {
  forEachItem(cmd, ctx, { write: true }, (item, target) => {
    const value = nodeValue(cmd, item)
    return value === undefined ? UNSUPPORTED_FORMAT : ctx.ops.add(target, value, ctx.principal)
  })
}
