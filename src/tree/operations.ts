/**
 * The DM commands on a view of the tree, each answering a SyncML status code (OMA DM RepPro 1.2, 6.5 and
 * DM TND 1.2). Both the committed tree (reads) and a transaction's working copy (writes) run through here.
 */
import { accountOf, DMACC } from './account-rules.ts'
import { allowed, creatorAcl, effectiveAcl, isValidAcl, aclGrants, type AclCommand } from './acl.ts'
import { dmAccRule, inDmAcc } from './dmacc-access.ts'
import { checkLeafData, canonicalFormat, DEFAULT_LEAF_TYPE, textOf } from './formats.ts'
import { canAdd, canReplace, DEVICE_FULL, type TreeLimits } from './limits.ts'
import type { MountedNode } from './mount.ts'
import { byteLength, childPath, parentPath, TreeNode, type NodeView, type WritableView } from './node.ts'
import { parseUri, type UriLimits } from './uri.ts'
import type { GetResult, NodeValue, Principal, SyncMLStatus } from './types.ts'

/**
 * Runs an Exec on a node; its status is the command's (202 when the work goes on in the background and its end is
 * reported later in a Generic Alert carrying the Exec's `correlator`, OMA DM Protocol 1.2, 6.6.6 and 8.7). An
 * asynchronous one (an external node's, external.ts) is awaited by the session, with `signal` aborted when the
 * agent stops; what it throws is the command's status (`statusOfError`).
 */
export type ExecHandler = (
  data: string | Uint8Array | undefined, principal: Principal, correlator?: string, signal?: AbortSignal,
  /** Reads a node as the Exec's message sees it (its own earlier Replaces included), as the device. */
  read?: (uri: string) => NodeValue | undefined,
) => SyncMLStatus | Promise<SyncMLStatus>

/** What the operations need from the tree beyond the nodes. */
export interface TreeContext {
  uriLimits(): UriLimits
  /** The tree's bounds (binding.md §11). */
  readonly limits: Readonly<TreeLimits>
  execHandler(path: string): ExecHandler | undefined
  /** The node mounted at `path` (mount.ts), if any. */
  mountedAt?(path: string): MountedNode | undefined
}

const INBOX = 'Inbox'
/** RepPro 1.2 statuses: a value in a format the node does not take; a value over the node's size. */
const UNSUPPORTED_FORMAT = 415
const ENTITY_TOO_LARGE = 413

/**
 * Nodes no command deletes: the root, the standard objects every device has, and their contents
 * (DM StdObj 1.2: DevInfo, DevDetail, DMAcc and Inbox are permanent).
 */
export function isPermanent(path: string): boolean {
  return path === '' || path === 'DMAcc' || path === INBOX || /^Dev(Info|Detail)(\/|$)/.test(path)
}

/**
 * `./DMAcc/<x>/AppAuth/<y>/AAuthSecret` and `.../AAuthData` (DMAcc MO access type), and the private key of the
 * account's HTTPS client certificate, `./DMAcc/<x>/Ext/GwmoAgent/ClientKey` (binding.md §10): no Get for anyone.
 */
export function isSecret(path: string): boolean {
  return /^DMAcc\/[^/]+\/(AppAuth\/[^/]+\/AAuth(Secret|Data)|Ext\/GwmoAgent\/ClientKey)$/.test(path)
}

/** The path of a URI naming a node (not a property), or the status that refuses the URI (405 for a property). */
export function nodePath(ctx: TreeContext | undefined, uri: string): string | SyncMLStatus {
  const parsed = parseUri(uri, ctx?.uriLimits())
  return typeof parsed === 'number' ? parsed : parsed.prop === undefined ? parsed.path : 405
}

/**
 * Whether `principal` may run `command` on `path`: the rules of `./DMAcc` first (binding.md §6), then the ACL in
 * force at `aclPath` (for Add, the nearest existing ancestor).
 */
function permitted(view: NodeView, path: string, command: AclCommand, principal: Principal, aclPath = path): boolean {
  const verdict = dmAccRule(view, path, command, principal)
  return verdict === 'acl' ? allowed(view, aclPath, command, principal) : verdict === 'allow'
}

/**
 * Whether `principal` may run `command` on the node at `path`: 200, 404 when there is no such node, 425 when
 * the rules of `./DMAcc` or the ACL in force deny it. A missing node the principal could not have used anyway
 * (its inherited ACL denies the command) is answered 425 too, so that a server learns nothing about nodes
 * hidden from it.
 */
function access(view: NodeView, path: string, command: AclCommand, principal: Principal): SyncMLStatus {
  return !permitted(view, path, command, principal) ? 425 : view.node(path) === undefined ? 404 : 200
}

/** The ServerID a principal's nodes count for (binding.md §11); none for the device. */
function partyOf(principal: Principal): string | undefined {
  return principal === 'device' ? undefined : principal.serverId
}

/** The node a written value makes (with `acl`, added by `creator`), or the status that refuses the value. */
function nodeOf(value: NodeValue, acl: string | undefined, creator: string | undefined): TreeNode | SyncMLStatus {
  const format = canonicalFormat(value.format)
  if (format === undefined) return 415
  const checked = checkLeafData(format, value.data)
  if (checked === undefined) return 415
  // A leaf's default type is not stored (TND 1.2, 7.7.7).
  const type = value.type === '' || (format !== 'node' && value.type === DEFAULT_LEAF_TYPE) ? undefined : value.type
  return new TreeNode(format, type, checked.data, acl, creator)
}

export function getOp(view: NodeView, ctx: TreeContext, uri: string, principal: Principal): GetResult {
  const parsed = parseUri(uri, ctx.uriLimits())
  if (typeof parsed === 'number') return { status: parsed }
  const { path, prop } = parsed
  // DM StdObj 1.2: a Get of ./Inbox MUST answer 405; secrets have no Get access, not even for the device.
  if (prop === undefined && (path === INBOX || isSecret(path))) return { status: 405 }
  const status = access(view, path, 'Get', principal)
  const node = view.node(path)
  if (status !== 200 || node === undefined) return { status }
  if (prop !== undefined) {
    const data = prop === 'ACL' ? node.a ?? '' : prop === 'Format' ? node.f : node.t ?? (node.f === 'node' ? '' : DEFAULT_LEAF_TYPE)
    return { status, value: { format: 'chr', data } }
  }
  const value: NodeValue = { format: node.f }
  if (node.t !== undefined) value.type = node.t
  // TND 1.2, 7.4: an interior node's value is the list of its children's names separated by '/'.
  const data = node.f === 'node' ? view.childNames(path).join('/') : node.d
  if (data !== undefined) value.data = data
  return { status, value }
}

export function addOp(view: WritableView, ctx: TreeContext, uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
  const path = nodePath(ctx, uri)
  if (typeof path === 'number') return path
  if (path === '') return 418
  // Adds into ./Inbox carry TNDS objects (DM Bootstrap 1.2); this device does not take them yet.
  if (path.startsWith(INBOX + '/')) return 406
  // The nearest existing ancestor: Add needs Add rights there (TND 1.2, 7.7.1), and creates what is missing.
  let anchor = parentPath(path)
  while (anchor !== '' && view.node(anchor) === undefined) anchor = parentPath(anchor)
  if (!permitted(view, path, 'Add', principal, anchor)) return 425
  if (view.node(path) !== undefined) return 418
  if (view.node(anchor)?.f !== 'node') return 405
  let acl: string | undefined
  // An account a party creates gets its ACL when the transaction commits (settleCreatedAccounts, binding.md §6).
  if (principal !== 'device' && !inDmAcc(path)) {
    // A server keeps control of what it creates: unless the inherited ACL already lets it manage the new
    // node, the topmost created node gets an ACL naming it (DM TND is silent; the CP bootstrap profile gives
    // mapped accounts the same rights).
    const inherited = effectiveAcl(view, anchor)
    const id = principal.serverId
    // A ServerID the ACL grammar cannot name (TND 7.7.1.5) leaves the node to its inherited ACL.
    if (!(['Add', 'Delete', 'Get', 'Replace'] as const).every((c) => aclGrants(inherited, c, id))) acl = creatorAcl(id)
  }
  // The interior nodes to create between the anchor and the new node, topmost first.
  const between: string[] = []
  for (let p = parentPath(path); p !== anchor; p = parentPath(p)) between.unshift(p)
  const creator = partyOf(principal)
  const node = nodeOf(value, between.length === 0 ? acl : undefined, creator)
  if (typeof node === 'number') return node
  const added: [string, TreeNode][] = between.map((p) => [p, new TreeNode('node', undefined, undefined, p === between[0] ? acl : undefined, creator)])
  added.push([path, node])
  // binding.md §11 (DM RepPro 1.2 status 420): the tree, each leaf and each party's share are bounded, so that no
  // party can exhaust the device nor starve the others.
  if (!canAdd(view, ctx.limits, added, creator)) return DEVICE_FULL
  // A party creating an account: recorded for the rules the commit holds it to (binding.md §6).
  const account = accountOf(path)
  const creating = principal !== 'device' && account !== undefined && view.node(`${DMACC}/${account}`) === undefined
  for (const [p, made] of added) view.put(p, made)
  if (creating) view.noteCreator(account, principal.serverId)
  return 200
}

export function replaceOp(view: WritableView, ctx: TreeContext, uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
  const parsed = parseUri(uri, ctx.uriLimits())
  if (typeof parsed === 'number') return parsed
  const { path, prop } = parsed
  if (prop === 'ACL') return replaceAcl(view, ctx, path, value, principal)
  if (prop !== undefined) return 405
  const node = view.node(path)
  // Permanent nodes keep their values against servers; the device itself updates DevInfo/DevDetail leaves
  // (a new firmware version, say).
  if (isPermanent(path) && (principal !== 'device' || node?.f === 'node')) return 405
  const status = access(view, path, 'Replace', principal)
  if (status !== 200) return status
  if (node === undefined || node.f === 'node' || value.format === 'node') return 405
  // The node stays its adder's, whoever replaces its value.
  const mounted = ctx.mountedAt?.(path)
  let made = nodeOf(mounted === undefined ? value : { ...value, type: mounted.type }, node.a, node.c)
  if (typeof made === 'number') return made
  if (mounted !== undefined) {
    // binding.md §8: a mounted leaf keeps its format and type, and its values their bound; one read from outside
    // the tree stores none.
    // A value read from outside and written nowhere cannot be replaced, whatever the ACL grants.
    if (mounted.node.get !== undefined && mounted.node.replace === undefined) return 405
    if (made.f !== mounted.format) return UNSUPPORTED_FORMAT
    if (byteLength(made.d) > mounted.maxBytes) return ENTITY_TOO_LARGE
    if (mounted.node.get !== undefined) made = new TreeNode(made.f, made.t, undefined, made.a, made.c)
  }
  if (!canReplace(view, ctx.limits, path, node, made, partyOf(principal))) return DEVICE_FULL
  view.put(path, made)
  return 200
}

/**
 * TND 1.2, 7.7.1.3: an interior node's ACL may be changed by whoever has Replace on the node; any node's ACL
 * also by whoever has Replace on its parent; a leaf's own ACL never grants the change.
 */
function replaceAcl(view: WritableView, ctx: TreeContext, path: string, value: NodeValue, principal: Principal): SyncMLStatus {
  // binding.md §6: no party changes an ACL in ./DMAcc, not even in its own account.
  if (principal !== 'device' && inDmAcc(path)) return 425
  const node = view.node(path)
  if (node === undefined) return access(view, path, 'Replace', principal)
  const bySelf = node.f === 'node' && allowed(view, path, 'Replace', principal)
  const byParent = path !== '' && allowed(view, parentPath(path), 'Replace', principal)
  if (!bySelf && !byParent) return 425
  const acl = textOf(value.data) ?? ''
  if (!isValidAcl(acl)) return 400
  // TND 1.2, 7.7.1.1: the root always has an ACL value.
  if (path === '' && acl === '') return 405
  const made = new TreeNode(node.f, node.t, node.d, acl === '' ? undefined : acl, node.c)
  if (!canReplace(view, ctx.limits, path, node, made, partyOf(principal))) return DEVICE_FULL
  view.put(path, made)
  return 200
}

export function deleteOp(view: WritableView, ctx: TreeContext, uri: string, principal: Principal): SyncMLStatus {
  const path = nodePath(ctx, uri)
  if (typeof path === 'number') return path
  if (isPermanent(path)) return 405
  const status = access(view, path, 'Delete', principal)
  if (status !== 200) return status
  // TND 1.2: deleting an interior node deletes its whole subtree, whatever the children's own ACLs say.
  // Deepest first, so that no removal ever orphans a node.
  const removeSubtree = (p: string): void => {
    for (const name of view.childNames(p)) removeSubtree(childPath(p, name))
    view.remove(p)
  }
  removeSubtree(path)
  return 200
}

export function execOp(
  view: NodeView, ctx: TreeContext, uri: string, data: string | Uint8Array | undefined, principal: Principal,
  correlator?: string, signal?: AbortSignal,
): SyncMLStatus | Promise<SyncMLStatus> {
  const path = nodePath(ctx, uri)
  if (typeof path === 'number') return path
  const status = access(view, path, 'Exec', principal)
  if (status !== 200) return status
  const handler = ctx.execHandler(path)
  return handler === undefined ? 405 : handler(data, principal, correlator, signal, (at) => getOp(view, ctx, at, 'device').value)
}

// The device's own reads: not held to the DevDetail/URI limits.

export function readSecretOp(view: NodeView, uri: string): string | Uint8Array | undefined {
  const path = nodePath(undefined, uri)
  const node = typeof path === 'string' ? view.node(path) : undefined
  return node?.f === 'node' ? undefined : node?.d
}

export function childrenOp(view: NodeView, uri: string): string[] | undefined {
  const path = nodePath(undefined, uri)
  return typeof path === 'string' && view.node(path)?.f === 'node' ? view.childNames(path) : undefined
}
