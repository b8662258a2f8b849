/**
 * Access control lists as OMA DM TND 1.2, 7.7.1 defines them: `Add=*&Get=srv1+srv2&Replace=srv1`, inherited
 * from the nearest ancestor that has a value, `*` granting any server; except that an account's nodes inherit
 * nothing from above the account (binding.md §6).
 */
import { isAccountNode } from './account-rules.ts'
import { parentPath, type NodeView } from './node.ts'
import type { Principal } from './types.ts'

export type AclCommand = 'Add' | 'Delete' | 'Exec' | 'Get' | 'Replace'

const COMMANDS = ['Add', 'Delete', 'Exec', 'Get', 'Replace']
/**
 * TND 1.2, 7.7.1.5: "All printable characters except '=', '&', '*', '+' or white-space characters": neither
 * a control character, a space nor one of those four.
 */
const SERVER_ID = /^[^\x00-\x20\x7f-\xa0=&*+]+$/

/** The entries of an ACL value, each command with the ServerIDs it names; an entry without `=` names none (''). */
function entries(acl: string): [command: string, ids: string[]][] {
  return acl.split('&').map((entry) => {
    const eq = entry.indexOf('=')
    return eq < 0 ? ['', []] : [entry.slice(0, eq), entry.slice(eq + 1).split('+')]
  })
}

/** Whether `value` follows the ACL grammar of TND 1.2, 7.7.1.5 (an empty value means "inherit"). */
export function isValidAcl(value: string): boolean {
  return value === '' || entries(value).every(([command, ids]) => COMMANDS.includes(command) && ids.every((id) => id === '*' || SERVER_ID.test(id)))
}

/** Whether an ACL value grants `command` to `serverId` (a `*` entry overrides named ones, TND 7.7.1.5). */
export function aclGrants(acl: string, command: AclCommand, serverId: string): boolean {
  return entries(acl).some(([c, ids]) => c === command && (ids.includes('*') || ids.includes(serverId)))
}

/**
 * The ACL in force at `path`: its own, or that of the nearest ancestor with one. A path that does not exist
 * yet inherits the same way, so a missing node answers as the node would once added.
 *
 * Inside an account the search stops at `./DMAcc/<x>` (binding.md §6): an account with no ACL on the way up to
 * its own node grants nothing to anyone, rather than what `./DMAcc` or the root grant. That is also what an
 * account whose ServerID no ACL can name (TND 1.2, 7.7.1.5) is left with: deny-all, never an inherited ACL.
 */
export function effectiveAcl(view: NodeView, path: string): string {
  let p = path
  for (;;) {
    const acl = view.node(p)?.a
    if (acl) return acl
    if (p === '' || isAccountNode(p)) return ''
    p = parentPath(p)
  }
}

/** Whether `principal` may perform `command` on `path`; the device itself is not held to ACLs. */
export function allowed(view: NodeView, path: string, command: AclCommand, principal: Principal): boolean {
  if (principal === 'device') return true
  return aclGrants(effectiveAcl(view, path), command, principal.serverId)
}

/**
 * The ACL a server gets on what it creates, so that it can manage the node afterwards; undefined for a
 * ServerID the ACL grammar cannot name (TND 1.2, 7.7.1.5).
 */
export function creatorAcl(serverId: string): string | undefined {
  const acl = `Add=${serverId}&Delete=${serverId}&Get=${serverId}&Replace=${serverId}`
  return isValidAcl(acl) ? acl : undefined
}
