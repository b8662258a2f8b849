/**
 * Device Detection Alert (GwMO seed 000, 8.6.1.2 and 8.6.1.3; binding.md §4.1–4.3): the gateway tells the device
 * its address and whether that address may be shared with the device's DM Servers. The device answers in the
 * same reply with the Bootstrapped DMS List (every DM Server it holds an account for) and, only when sharing is
 * allowed, tells each of those servers the gateway's address (Associated Gateway) in a session with it.
 *
 * Who may send it is decided before this handler runs: the session engine runs it only for a party that
 * authenticated against its account, or, with `acceptDetectionFrom: "any"` (a trusted LAN), for a party the
 * device holds no account for. A party that has an account is always held to its credentials (401/407 from the
 * engine): an account names credentials, and "any" must not let a stranger speak for a known gateway without
 * them.
 *
 * With `Share` false the gateway's address stays on the device: it is in no alert, and in no log line (the
 * location record in the agent state, a local file, keeps it to recognise the gateway).
 *
 * Bounds (binding.md §11): one Device Detection Alert counts in a message, the first; any other in it is answered
 * 406 (Optional feature not supported: a detection says where the device is now, and several in one message say
 * nothing a gateway could mean, so this device does not take them) and runs nothing. Detections are rate-limited
 * per gateway (`detectionsPerMinute`, a bucket that holds as many); one over the rate is answered 417 (Retry later,
 * SyncML's code for "try again later") and runs nothing: no mark, no list, no alert, no session. Every line a
 * flood can repeat is rate-limited, with the count of those left out.
 */
import {
  ALERT,
  buildServerList,
  GWMO_ALERT_TYPE,
  GWMO_PAYLOAD_FORMAT,
  parseDeviceDetection,
} from '../codec/gwmo.ts'
import type { Logger } from '../log.ts'
import type { AlertContext, GenericAlertSpec, SessionManager } from '../session/index.ts'
import { BoundedMap, PartyRateLimiter, QuietLog } from '../rate-limit.ts'
import { findAccount, markGateway, readAccounts } from '../tree/accounts.ts'
import type { TreeOps } from '../tree/types.ts'

export type AcceptDetectionFrom = 'bootstrapped' | 'any'

/** An accepted detection, handed on once the reply (with the DMS list) is built. */
export interface AcceptedDetection {
  /** The gateway's LocURI (the party that sent the alert). */
  gatewayId: string
  gwAddress: string
  share: boolean
  /** The DM Servers listed in the Bootstrapped DMS List. */
  servers: string[]
  /** Whether the gateway authenticated (false only when `acceptDetectionFrom` is `any`). */
  authenticated: boolean
}

export interface DetectionOptions {
  deviceId: string
  acceptDetectionFrom: AcceptDetectionFrom
  /**
   * Runs once the detection's message is committed and durable and its answer handed over: the Associated
   * Gateway alerts and sessions, the location monitor. A message whose commit is refused leaves the gateway
   * unmarked, and so starts nothing either.
   */
  onAccepted(detection: AcceptedDetection): void
  /** Detections taken from one gateway a minute (binding.md §11); default `DEFAULT_DETECTIONS_PER_MINUTE`. */
  detectionsPerMinute?: number
  /** The time in ms (the engine's clock), for the rate and the log's. */
  now(): number
  logger: Logger
}

/** The agent passes its `limits.detectionsPerMinute` (`CONFIG_DEFAULTS`); this is for a layer built without it. */
export const DEFAULT_DETECTIONS_PER_MINUTE = 6
/** Gateways whose rate and last message are remembered (least recently seen forgotten), so names cannot grow it. */
const TRACKED_GATEWAYS = 1024
const QUIET_LOG_MS = 1000

const BAD_REQUEST = 400
const OK = 200
/** SyncML RepPro 1.2: 406 Optional feature not supported; 417 Retry later. */
const NOT_SUPPORTED = 406
const RETRY_LATER = 417
const FAILED = 500

/** What the handler keeps between detections: the rate per gateway, its last message, the log's rate. */
interface DetectionBounds {
  rate: PartyRateLimiter
  /** Per gateway, the message (`<SessionID> <MsgID>`) whose detection counted last. */
  lastMessage: BoundedMap<string, string>
  quiet: QuietLog
}

/** Registers Alert 1230 on the session engine's alert registry. */
export function registerDetection(sessions: Pick<SessionManager, 'registerAlert'>, options: DetectionOptions): void {
  const perMinute = options.detectionsPerMinute ?? DEFAULT_DETECTIONS_PER_MINUTE
  const bounds: DetectionBounds = {
    rate: new PartyRateLimiter(perMinute / 60, perMinute, TRACKED_GATEWAYS),
    lastMessage: new BoundedMap(TRACKED_GATEWAYS),
    quiet: new QuietLog(QUIET_LOG_MS, TRACKED_GATEWAYS),
  }
  sessions.registerAlert(ALERT.DEVICE_DETECTION, (ctx) => handleDetection(ctx, options, bounds), {
    acceptUnauthenticated: (party) => options.acceptDetectionFrom === 'any' && !party.hasAccount,
  })
}

async function handleDetection(ctx: AlertContext, options: DetectionOptions, bounds: DetectionBounds): Promise<number> {
  const { party } = ctx
  const logger = options.logger
  const gateway = party.serverId
  const now = options.now()
  const quietly = (kind: string, write: (suppressed: number) => void) => bounds.quiet.note(`${gateway}\u0000${kind}`, now, write)
  // A message is answered once (a duplicate from the reply cache), so its SessionID and MsgID name it.
  const message = `${ctx.session.sessionId} ${ctx.session.msgId}`
  if (bounds.lastMessage.get(gateway) === message) {
    quietly('several', (suppressed) => logger.warn('device detection refused: one a message counts', { gateway, status: NOT_SUPPORTED, suppressed }))
    return NOT_SUPPORTED
  }
  bounds.lastMessage.set(gateway, message)
  if (!bounds.rate.take(gateway, now)) {
    quietly('rate', (suppressed) => logger.warn('device detection refused: over the rate for the gateway', { gateway, status: RETRY_LATER, suppressed }))
    return RETRY_LATER
  }
  const parsed = parseDeviceDetection(ctx.alert)
  if (!parsed.ok) {
    // The payload's text is not logged: it may hold the address of a gateway that does not allow sharing it.
    const { code, message: error } = parsed.error
    quietly('payload', (suppressed) => logger.warn('device detection refused: bad payload', { gateway, code, error, suppressed }))
    return BAD_REQUEST
  }
  const { gwAddress, share } = parsed.value

  // binding.md §1: the account of a party whose detection the device accepts is a gateway's, persisted with the
  // message's transaction (and so flushed before the reply's 200 leaves).
  if (party.hasAccount) {
    const account = findAccount(ctx.ops, party.serverId)
    if (account !== undefined && account.role !== 'gateway') {
      const status = markGateway(ctx.ops, account)
      if (status < 200 || status > 299) {
        logger.error('device detection: cannot mark the account as a gateway', { gateway: party.serverId, status })
        return FAILED
      }
    }
  }

  const servers = dmServers(ctx.ops).filter((serverId) => serverId !== party.serverId)
  const list = buildServerList(servers)
  await ctx.sendGenericAlert(gwmoAlert(GWMO_ALERT_TYPE.BOOTSTRAPPED_DMS_LIST, list, options.deviceId, party.serverId))
  logger.info('device detection accepted', {
    gateway: party.serverId,
    authenticated: party.authenticated,
    share,
    ...(share && { gwAddress }),
    servers: servers.length,
  })
  const accepted = { gatewayId: party.serverId, gwAddress, share, servers, authenticated: party.authenticated }
  ctx.ops.afterCommit(() => options.onAccepted(accepted))
  return OK
}

/** The DM Servers the device holds an account for: every account but the gateways'. */
export function dmServers(tree: TreeOps): string[] {
  return readAccounts(tree).filter((a) => a.role !== 'gateway').map((a) => a.serverId)
}

/**
 * A GwMO Generic Alert from the device to one server (seed 000, Appendix Y): the Associated Gateway and Location
 * Update alerts, and the Bootstrapped DMS List in the detection's reply.
 */
export function gwmoAlert(type: string, data: string, deviceId: string, serverId: string): GenericAlertSpec {
  return { type, format: GWMO_PAYLOAD_FORMAT, data, source: deviceId, target: serverId }
}
