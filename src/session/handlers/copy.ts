import type { ItemCommand } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'
import { forEachItem } from './items.ts'

/** 406 "Optional feature not supported": copying an interior node's subtree, or an external node, is not offered. */
const SUBTREE_COPY = 406

/**
 * Copy (OMA DM Protocol 1.2, 6.6.3): the Source leaf's value goes to the Target, added when the Target does not
 * exist and replaced when it does. The source is read with the party's own rights, so Copy never reveals what
 * Get would not (AAuthSecret and AAuthData are unreadable to everyone). A node whose value lives outside the
 * tree (binding.md §8) is neither copied nor copied to: Get and Replace are its commands.
 */
export function handleCopy(cmd: ItemCommand, ctx: HandlerContext): void {
  forEachItem(cmd, ctx, { write: true, needsSource: true }, (item, target) => {
    if (ctx.ops.external(item.source!.locUri)?.node.get !== undefined || ctx.ops.external(target)?.node.replace !== undefined) return SUBTREE_COPY
    const source = ctx.ops.get(item.source!.locUri, ctx.principal)
    if (source.status !== 200 || source.value === undefined) return source.status
    if (source.value.format === 'node') return SUBTREE_COPY
    const added = ctx.ops.add(target, source.value, ctx.principal)
    return added === 418 ? ctx.ops.replace(target, source.value, ctx.principal) : added
  })
}
