import type { Item, ItemCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'
import { BAD_REQUEST, valueItem } from './items.ts'

/**
 * Get (OMA DM Protocol 1.2, 6.6.7): a Status per item with the tree's code, and for the items read, one Results
 * whose Items carry Source/LocURI = the node URI and Meta Format/Type (Package 3 rules, DM Protocol 1.2, 8.3).
 */
export function handleGet(cmd: ItemCommand, ctx: HandlerContext): void {
  const found: Item[] = []
  for (const item of cmd.items) {
    const uri = item.target?.locUri
    if (uri === undefined) {
      ctx.reply.status(cmd, BAD_REQUEST)
      continue
    }
    const result = ctx.ops.get(uri, ctx.principal)
    ctx.reply.status(cmd, result.status, { targetRef: uri })
    if (result.status !== 200 || result.value === undefined) continue
    found.push(valueItem(uri, result.value))
  }
  if (found.length > 0) ctx.reply.results({ cmdRef: cmd.cmdId, targetRefs: [], sourceRefs: [], items: found })
}
