/**
 * The DM Server peer: a scripted OMA DM 1.2 server on a broker. Besides following the sessions the device
 * opens (see `party.ts`), it triggers them with a DM Notification (Package 0) and pushes sessions.
 */
import { randomBytes } from 'node:crypto'
import { nonceBytes } from './auth.ts'
import { CONTENT_TYPE, publish } from './mqtt.ts'
import { buildNotification, type UiMode } from './notification.ts'
import type { PeerBaseOptions } from './party-options.ts'
import { Party, type PartyOptions } from './party.ts'

export interface DmServerOptions extends PeerBaseOptions {
  /** The server's LocURI, e.g. `http://dms.example.com`: the ServerID of the device's account. */
  serverId: string
  challenge407?: PartyOptions['challenge407']
  genericAlertStatus?: PartyOptions['genericAlertStatus']
  statusForResults?: boolean
}

/**
 * Which nonce the notification digest uses: the one the device gave us last (`stored`), the default nonce of
 * OMA DM Notification 1.2 as four zero bytes (`zero-bytes`) or as the text libdmclient sends (`text`), or a
 * random one that must fail (`wrong`).
 */
export type DigestNonce = 'stored' | 'zero-bytes' | 'text' | 'wrong'

export interface NotificationRequest {
  /** 1..FFFF; the device answers with Alert 1200 in a session with this id in upper-case hex. */
  sessionId: number
  /** Publish here instead of the device's `notification` topic (e.g. a gateway's, to have it forwarded). */
  via?: string
  /** b64 nonce to use instead of `digestNonce`. */
  nonce?: string
  digestNonce?: DigestNonce
  uiMode?: UiMode
  initiator?: 'server' | 'client'
  version?: number
  vendor?: Uint8Array
  /** Sign with this password instead of the configured one (a forged notification). */
  password?: string
}

export class DmServer extends Party {
  constructor(readonly serverOptions: DmServerOptions) {
    super({ ...serverOptions, partyId: serverOptions.serverId })
  }

  get serverId(): string {
    return this.serverOptions.serverId
  }

  /** Builds Package 0 and publishes it; returns the bytes sent. */
  async sendNotification(request: NotificationRequest): Promise<Buffer> {
    const bytes = this.notificationBytes(request)
    const topic = request.via ?? this.topic(this.opts.deviceId, 'notification')
    this.trace('out', topic, `DM Notification session ${request.sessionId.toString(16).toUpperCase()} (${bytes.length} bytes)`)
    await publish(this.mqtt(), topic, bytes, { contentType: CONTENT_TYPE.notification })
    return bytes
  }

  notificationBytes(request: NotificationRequest): Buffer {
    return buildNotification(
      {
        serverId: this.serverOptions.serverId,
        sessionId: request.sessionId,
        version: request.version,
        uiMode: request.uiMode,
        initiator: request.initiator,
        vendor: request.vendor,
      },
      request.password ?? this.serverOptions.serverPassword,
      request.nonce !== undefined ? nonceBytes(request.nonce) : this.digestNonce(request.digestNonce ?? 'stored'),
    )
  }

  private digestNonce(kind: DigestNonce): Uint8Array {
    switch (kind) {
      case 'stored':
        return nonceBytes(this.serverNonce)
      case 'zero-bytes':
        return new Uint8Array(4)
      case 'text':
        return Buffer.from('0x00000000', 'ascii')
      case 'wrong':
        return randomBytes(8)
    }
  }
}

export async function startDmServer(options: DmServerOptions): Promise<DmServer> {
  const server = new DmServer(options)
  await server.start()
  return server
}
