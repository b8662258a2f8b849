/**
 * Who may do what in `./DMAcc` (binding.md §6, "Who may change what"). DM StdObj 1.2 makes the DMAcc nodes
 * Get-only for servers, and GwMO 1.0, 8.4.1 (a DM Server bootstrapping the gateway's account) is the one reason
 * a server adds an account, so these rules come before the ACLs and hold whatever an ACL says:
 * - no party lists `./DMAcc`, nor reads or changes an account that is not its own (by its ServerID);
 * - a gateway (its account has `Ext/GwMO/Role` = `gateway`) changes nothing in `./DMAcc`;
 * - a DM Server may `Add` a new account where `./DMAcc`'s ACL lets it; until the transaction commits, that
 *   account is its creator's to build, and at commit it must be a gateway's and gets its own server's ACL, not
 *   the creator's (`settleCreatedAccounts`);
 * - in its own account a party changes no ACL, nor the `ServerID`, the `Ext/GwMO/Role` or the
 *   `Ext/GwmoAgent/Binding`; the account's ACL decides the rest (credential rotation).
 * The device itself (bootstraps, and its own bookkeeping such as a gateway's mark or a nonce) is not held to them.
 */
import { accountOf, DMACC, leafText } from './account-rules.ts'
import { creatorAcl, type AclCommand } from './acl.ts'
import { childPath, TreeNode, type NodeView } from './node.ts'
import type { Overlay } from './overlay.ts'
import type { Principal } from './types.ts'

/** What the rules make of an operation: refused, allowed whatever the ACLs say, or left to the ACLs. */
export type DmAccVerdict = 'deny' | 'allow' | 'acl'

const SERVER_ID = 'ServerID'
const ROLE = 'Ext/GwMO/Role'
/**
 * The leaves of an existing account that no party changes: whose account it is, whether it is a gateway's, and
 * which binding reaches it (binding.md §10: whoever bootstraps the account decides; a server's Replace of its own
 * CA, client certificate or address is left to the ACL, like a credential's rotation).
 */
const FIXED = [SERVER_ID, ROLE, 'Ext/GwmoAgent/Binding']

/** The rules' verdict on `command` at `path` (a node path, not a property) for `principal`. */
export function dmAccRule(view: NodeView, path: string, command: AclCommand, principal: Principal): DmAccVerdict {
  if (principal === 'device') return 'acl'
  // Listing the accounts names every party the device talks to (Replace and Delete of this permanent node
  // are refused before any rule).
  if (path === DMACC) return 'deny'
  const account = accountOf(path)
  if (account === undefined) return 'acl'
  const id = principal.serverId
  if (command !== 'Get' && isGateway(view, id)) return 'deny'
  const creator = view.creatorOf?.(account)
  if (creator !== undefined) return creator === id ? 'allow' : 'deny'
  const base = childPath(DMACC, account)
  // A new account: ./DMAcc's ACL decides whether this party may add one; there is nothing to read in it.
  if (view.node(base) === undefined) return command === 'Add' ? 'acl' : 'deny'
  if (leafText(view, `${base}/${SERVER_ID}`) !== id) return 'deny'
  const rel = path.slice(base.length + 1)
  const fixed =
    command === 'Add' || command === 'Replace' ? FIXED.includes(rel)
    : command === 'Delete' ? rel === '' || FIXED.some((leaf) => leaf === rel || leaf.startsWith(rel + '/'))
    : false
  return fixed ? 'deny' : 'acl'
}

/** Whether `path` lies in `./DMAcc` (the node itself or below it). */
export function inDmAcc(path: string): boolean {
  return path === DMACC || accountOf(path) !== undefined
}

/** Whether the party `serverId` holds a gateway's account in `view` (binding.md §1). */
function isGateway(view: NodeView, serverId: string): boolean {
  return view.childNames(DMACC).some((x) => {
    const base = childPath(DMACC, x)
    return leafText(view, `${base}/${SERVER_ID}`) === serverId && leafText(view, `${base}/${ROLE}`) === 'gateway'
  })
}

/**
 * Holds the accounts parties created in `work` to the rules of an added account (GwMO 1.0, 8.4.1): each must be
 * a gateway's, or the commit is refused with one message per account, naming the path. With `giveAcls` (the
 * commit that reaches the tree), each then gets its own server's ACL: `creatorAcl` of its ServerID, or none,
 * which inside an account denies every party, for a ServerID no ACL can name.
 */
export function settleCreatedAccounts(work: Overlay, giveAcls: boolean): string[] {
  const messages: string[] = []
  for (const account of work.createdAccounts()) {
    const base = childPath(DMACC, account)
    const node = work.node(base)
    if (node === undefined) continue
    const role = leafText(work, `${base}/${ROLE}`)
    if (role !== 'gateway') {
      const found = role === undefined ? 'missing' : `must be gateway, not '${role}'`
      messages.push(`./${base}/${ROLE}: ${found}: a DM Server adds only a gateway's account (GwMO 1.0, 8.4.1)`)
      continue
    }
    if (!giveAcls) continue
    const serverId = leafText(work, `${base}/${SERVER_ID}`)
    const acl = serverId ? creatorAcl(serverId) : undefined
    if (node.a !== acl) work.put(base, new TreeNode(node.f, node.t, node.d, acl, node.c))
  }
  return messages
}
