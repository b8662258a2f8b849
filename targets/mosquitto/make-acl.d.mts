// Types of make-acl.mjs, for the tests that build their broker's ACL with it.
export type Role = 'server' | 'gateway' | 'bootstrap'
export type Channel = 'dm' | 'notification' | 'bootstrap'

export interface PartyEntry {
  /** The party's LocURI (a DM Server's or gateway's ServerID), or a bootstrap server's name. */
  id: string
  role: Role
  /** The device's topics the party publishes to; by role unless given. */
  channels?: Channel[]
  /** The topic the party's AppAddr names on this broker, when the device sends there instead of the party's `dm`. */
  topic?: string
}

export interface DeviceEntry {
  /** The device's DevId. */
  id: string
  parties: PartyEntry[]
}

export interface AclWorld {
  prefix?: string
  devices: DeviceEntry[]
  /** Names that may read every listed device's status. */
  observers?: string[]
}

export const DEFAULT_PREFIX: string
export const ROLE_CHANNELS: Readonly<Record<Role, Channel[]>>
export function usernameFor(id: string): string
export function makeAcl(world: unknown): { ok: true; text: string } | { ok: false; error: string }
