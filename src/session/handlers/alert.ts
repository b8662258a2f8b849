import type { Alert } from '../../codec/syncml-model.ts'
import type { HandlerContext } from './context.ts'

/** OMA DM Protocol 1.2, 8.4 / dm-reference.md §2.3 alert codes the session itself answers. */
export const ALERT_DISPLAY = '1100'
const USER_INTERACTION = new Set(['1101', '1102', '1103', '1104'])
export const ALERT_NEXT_MESSAGE = '1222'
export const ALERT_SESSION_ABORT = '1223'
const NOT_SUPPORTED = 406

/**
 * Alert: 1223 ends the session with no reply at all ("a client receiving Alert 1223 SHOULD NOT respond");
 * 1222 (next message) is acknowledged; DISPLAY is logged and acknowledged; the other user-interaction alerts
 * (1101–1104) cannot be answered by a headless device (406); any other code goes to the handler the layers
 * above registered for it (GwMO: 1230), or gets 406 when none did.
 */
export async function handleAlert(cmd: Alert, ctx: HandlerContext): Promise<void> {
  const code = cmd.data.trim()
  if (code === ALERT_SESSION_ABORT) {
    ctx.abortSession()
    return
  }
  if (code === ALERT_NEXT_MESSAGE) {
    ctx.reply.status(cmd, 200)
    return
  }
  if (code === ALERT_DISPLAY) {
    const text = cmd.items.map((i) => (typeof i.data === 'string' ? i.data : '')).join(' ')
    ctx.logger.info('display alert', { party: ctx.party.serverId, text: text.slice(0, 200) })
    ctx.reply.status(cmd, 200)
    return
  }
  if (USER_INTERACTION.has(code)) {
    ctx.reply.status(cmd, NOT_SUPPORTED)
    return
  }
  const registration = ctx.alerts.lookup(code)
  if (registration === undefined) {
    ctx.reply.status(cmd, NOT_SUPPORTED)
    return
  }
  let status: number
  try {
    status = await registration.handler({
      alert: cmd,
      party: ctx.party,
      session: ctx.session,
      ops: ctx.ops,
      sendGenericAlert: (alert) => ctx.sendGenericAlert(alert),
      logger: ctx.logger,
    })
  } catch (error) {
    ctx.logger.error('alert handler failed', { code, error })
    status = 500
  }
  ctx.reply.status(cmd, status)
}
