/**
 * Who the integration tests' broker admits: the least-privilege ACL of binding.md §6, made by the shipped
 * generator (targets/mosquitto/make-acl.mjs) from the identities the tests play. Every test device has every DM
 * Server, gateway and bootstrap server the tests play as a party, so the broker lets their traffic through; the
 * device may still hold no account for one of them, which is how the tests reach the device's own refusals.
 * Clients connect with user names (`usernameFor`); with no password file mosquitto takes any name.
 */
import { makeAcl, usernameFor, type AclWorld, type PartyEntry } from '../../targets/mosquitto/make-acl.mjs'

export { usernameFor, type AclWorld }

/** Reads every device's retained status (StatusWatcher). */
export const STATUS_OBSERVER = 'status-observer'
/** Reads every topic and publishes nothing: the tests' record of what went over the wire (BrokerWatch). */
export const WIRE_TAP = 'wire-tap'
/** The local DM Bootstrap Server's name (it has no LocURI; the bootstrap peer's default Source). */
export const BOOTSTRAP_SERVER = 'bootstrap'

export const TEST_DEVICES = ['mac:01-ab-34-ef-69-0c', 'IMEI:493005100592800']

const SERVERS = [
  'http://dms.example.com', 'http://dms2.example.org', 'http://www.someDMServer.com', 'http://www.nextDMServer.com',
  'http://www.thirdDMServer.com', 'http://www.fourthDMServer.com', 'http://www.fifthDMServer.com', 'http://never.example.com',
  // Servers the device holds no account for.
  'http://stranger.example.com', 'http://unknown-dms.example.com',
]
const GATEWAYS = [
  'http://gw.example.net', 'http://gw1.example.net', 'http://gw2.example.net', 'http://gw3.example.net',
  'http://edge.example.net', 'http://gw.local', 'http://gw.local.example',
  // A gateway the device holds no account for.
  'http://unknown-gw.example.net',
]

export const TEST_PARTIES: PartyEntry[] = [
  ...SERVERS.map((id): PartyEntry => ({ id, role: 'server' })),
  ...GATEWAYS.map((id): PartyEntry => ({ id, role: 'gateway' })),
  { id: BOOTSTRAP_SERVER, role: 'bootstrap' },
]

/** Each of `devices` with each of `parties`. */
export function worldOf(devices: string[], parties: PartyEntry[]): AclWorld {
  return { devices: devices.map((id) => ({ id, parties })), observers: [STATUS_OBSERVER] }
}

export const TEST_WORLD: AclWorld = worldOf(TEST_DEVICES, TEST_PARTIES)

/** The acl_file for `world`, with the tests' read-only wire tap; throws on a world the generator refuses. */
export function aclFileFor(world: AclWorld): string {
  const made = makeAcl(world)
  if (!made.ok) throw new Error(`test broker ACL: ${made.error}`)
  return `${made.text}\n# The tests' wire tap: reads every topic, publishes nothing.\nuser ${WIRE_TAP}\ntopic read #\n`
}
