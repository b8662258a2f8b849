import type { Item, ItemCommand } from '../../codec/syncml-model.ts'
import { canonicalFormat } from '../../tree/formats.ts'
import type { NodeValue } from '../../tree/types.ts'
import type { HandlerContext } from './context.ts'

/** Status 415 "Unsupported media type or format" (OMA DM RepPro 1.2, 10.3) for a format the tree does not know. */
export const UNSUPPORTED_FORMAT = 415
/** Status 400: a command whose Item lacks the Target (or Source) it needs. */
export const BAD_REQUEST = 400

/**
 * The node value an Add/Replace item writes: Format and Type from the item's Meta, else the command's
 * (RepPro 1.2, 5.4: an Item's Meta overrides the command's); `chr` when neither says.
 */
export function nodeValue(cmd: ItemCommand, item: Item): NodeValue | undefined {
  // DM TND 1.2 formats (`Meta/Format`): the tree's own list.
  const format = canonicalFormat((item.meta?.format ?? cmd.meta?.format ?? 'chr').trim())
  if (format === undefined) return undefined
  const value: NodeValue = { format }
  const type = item.meta?.type ?? cmd.meta?.type
  if (type !== undefined) value.type = type
  if (item.data !== undefined && format !== 'node') value.data = item.data
  return value
}

/**
 * A node's value as an Item of ours: Source/LocURI = the node URI, Meta Format and Type, Data (Results of a
 * Get, the DevInfo of Package 1: DM Protocol 1.2, 8.2 and 8.3).
 */
export function valueItem(uri: string, value: NodeValue): Item {
  const meta: Item['meta'] = { format: value.format }
  if (value.type !== undefined) meta.type = value.type
  return { source: { locUri: uri }, meta, data: value.data ?? '' }
}

/**
 * Runs one tree operation per Item and answers each with its own Status, naming the item by TargetRef (and
 * SourceRef where it has a Source), as binding.md §3 asks: every command gets its tree's code.
 */
export function forEachItem(
  cmd: ItemCommand,
  ctx: HandlerContext,
  options: { write: boolean; needsSource?: boolean },
  run: (item: Item, target: string) => number,
): void {
  for (const item of cmd.items) {
    const target = item.target?.locUri
    const source = item.source?.locUri
    const refs = { targetRef: target, sourceRef: source }
    if (target === undefined || (options.needsSource && source === undefined)) {
      ctx.reply.status(cmd, BAD_REQUEST, refs)
      continue
    }
    ctx.reply.status(cmd, run(item, target), { ...refs, write: options.write })
  }
}
