import type { Status } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'

/**
 * A Status from the party answers one of our commands (or our SyncHdr): it is consumed, never answered
 * (OMA DM RepPro 1.2, 6.6.16). The session reads what it means: authentication (212, 401/407 with Chal) and
 * the acknowledgement of queued Generic Alerts (200/202).
 */
export function handleStatus(cmd: Status, ctx: HandlerContext): void {
  ctx.consumeStatus(cmd)
}
