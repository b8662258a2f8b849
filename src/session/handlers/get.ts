import type { Item, ItemCommand } from '../../codec/syncml-model.ts'
import { readExternal } from '../external-calls.ts'
import type { HandlerContext } from './context.ts'
import { BAD_REQUEST, valueItem } from './items.ts'

/**
 * Get (OMA DM Protocol 1.2, 6.6.7): a Status per item with the tree's code, and for the items read, one Results
 * whose Items carry Source/LocURI = the node URI and Meta Format/Type (Package 3 rules, DM Protocol 1.2, 8.3). A
 * node read from outside the tree (binding.md §8) is read once the tree has allowed the Get: its value, or the
 * status of its failure (413 over its maxBytes).
 */
export async function handleGet(cmd: ItemCommand, ctx: HandlerContext): Promise<void> {
  const found: Item[] = []
  for (const item of cmd.items) {
    const uri = item.target?.locUri
    if (uri === undefined) {
      ctx.reply.status(cmd, BAD_REQUEST)
      continue
    }
    const result = ctx.ops.get(uri, ctx.principal)
    const mounted = result.status === 200 && result.value?.format !== 'node' ? ctx.ops.external(uri) : undefined
    if (mounted?.node.get !== undefined && result.value !== undefined) {
      const read = await readExternal(mounted, { serverId: ctx.principal.serverId, uri: mounted.uri, signal: ctx.signal }, ctx.logger)
      result.status = read.status
      if (read.data !== undefined) result.value.data = read.data
      else delete result.value.data
    }
    ctx.reply.status(cmd, result.status, { targetRef: uri })
    if (result.status !== 200 || result.value === undefined) continue
    found.push(valueItem(uri, result.value))
  }
  if (found.length > 0) ctx.reply.results({ cmdRef: cmd.cmdId, targetRefs: [], sourceRefs: [], items: found })
}
