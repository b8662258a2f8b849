import type { ItemCommand } from '../../codec/syncml-model.ts'
import { checkLeafData } from '../../tree/formats.ts'
import type { HandlerContext } from './context.ts'
import { BAD_REQUEST, nodeValue, UNSUPPORTED_FORMAT } from './items.ts'

/**
 * Replace (OMA DM Protocol 1.2, 6.6.11): one Status per item with the tree's code (404 missing, 405, 425…). A
 * mounted leaf (binding.md §8) takes values in its own format, the one a Replace without Meta Format writes
 * (the tree answers 415 for another, 413 over its maxBytes); one written outside the tree is written once the
 * commands it depends on have all succeeded (`deferWrite`), and its Status then says how that went.
 */
export function handleReplace(cmd: ItemCommand, ctx: HandlerContext): void {
  for (const item of cmd.items) {
    const target = item.target?.locUri
    const refs = { targetRef: target, sourceRef: item.source?.locUri }
    const value = target === undefined ? undefined : nodeValue(cmd, item)
    if (target === undefined || value === undefined) {
      ctx.reply.status(cmd, target === undefined ? BAD_REQUEST : UNSUPPORTED_FORMAT, refs)
      continue
    }
    const mounted = ctx.ops.external(target)
    if (mounted !== undefined && (item.meta?.format ?? cmd.meta?.format) === undefined) value.format = mounted.format
    const writes = mounted?.node.replace !== undefined ? mounted : undefined
    // A stored leaf written outside the tree is set back to this value when its write fails.
    const stored = writes !== undefined && writes.node.get === undefined ? ctx.ops.get(target, 'device').value : undefined
    const status = ctx.ops.replace(target, value, ctx.principal)
    const answer = ctx.reply.status(cmd, status, { ...refs, write: true })
    if (status !== 200 || writes === undefined) continue
    ctx.ops.deferWrite({
      mounted: writes,
      value: checkLeafData(writes.format, value.data)?.data ?? '',
      call: { serverId: ctx.principal.serverId, uri: writes.uri, signal: ctx.signal },
      status: answer,
      stored,
    })
  }
}
