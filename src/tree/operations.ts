/**
 * The DM commands on a view of the tree, each answering a SyncML status code (OMA DM RepPro 1.2, 6.5 and
 * DM TND 1.2). Both the committed tree (reads) and a transaction's working copy (writes) run through here.
 */
import { allowed, creatorAcl, effectiveAcl, isValidAcl, aclGrants, type AclCommand } from './acl.ts'
import { checkLeafData, canonicalFormat, DEFAULT_LEAF_TYPE, isEmpty } from './formats.ts'
import { descendantsDeepestFirst, parentPath, TreeNode, type NodeView, type WritableView } from './node.ts'
import { parseUri, type ParsedUri, type UriLimits } from './uri.ts'
import type { GetResult, NodeValue, Principal, SyncMLStatus } from './types.ts'

/** Runs an Exec on a node; its status is the command's. */
export type ExecHandler = (data: string | Uint8Array | undefined, principal: Principal) => SyncMLStatus

/** What the operations need from the tree beyond the nodes. */
export interface TreeContext {
  uriLimits(): UriLimits
  readonly maxNodes: number
  execHandler(path: string): ExecHandler | undefined
}

const INBOX = 'Inbox'

/**
 * Nodes no command deletes: the root, the standard objects every device has, and their contents
 * (DM StdObj 1.2: DevInfo, DevDetail, DMAcc and Inbox are permanent).
 */
export function isPermanent(path: string): boolean {
  return (
    path === '' || path === 'DMAcc' || path === INBOX || path === 'DevInfo' || path === 'DevDetail' ||
    path.startsWith('DevInfo/') || path.startsWith('DevDetail/')
  )
}

/** `./DMAcc/<x>/AppAuth/<y>/AAuthSecret` and `.../AAuthData`: no Get for anyone (DMAcc MO access type). */
export function isSecret(path: string): boolean {
  // Every account read asks this of each of its nodes: the name is checked first, and nothing is allocated.
  if (!path.startsWith('DMAcc/') || !(path.endsWith('/AAuthSecret') || path.endsWith('/AAuthData'))) return false
  const x = path.indexOf('/', 6)
  if (x < 0 || !path.startsWith('/AppAuth/', x)) return false
  const y = path.indexOf('/', x + 9)
  return y >= x + 9 && path.indexOf('/', y + 1) < 0
}

function parse(ctx: TreeContext, uri: string): ParsedUri | SyncMLStatus {
  return parseUri(uri, ctx.uriLimits())
}

/**
 * A refusal for a node that does not exist: 425 when the principal could not have used the node anyway (its
 * inherited ACL denies the command), so that a server learns nothing about nodes hidden from it; else 404.
 */
function missing(view: NodeView, path: string, command: AclCommand, principal: Principal): SyncMLStatus {
  return allowed(view, path, command, principal) ? 404 : 425
}

export function getOp(view: NodeView, ctx: TreeContext, uri: string, principal: Principal): GetResult {
  const parsed = parse(ctx, uri)
  if (typeof parsed === 'number') return { status: parsed }
  const { path, prop } = parsed
  // DM StdObj 1.2: a Get of ./Inbox MUST answer 405; secrets have no Get access, not even for the device.
  if (prop === undefined && (path === INBOX || isSecret(path))) return { status: 405 }
  const node = view.node(path)
  if (node === undefined) return { status: missing(view, path, 'Get', principal) }
  if (!allowed(view, path, 'Get', principal)) return { status: 425 }
  if (prop === 'ACL') return { status: 200, value: { format: 'chr', data: node.a ?? '' } }
  if (prop === 'Format') return { status: 200, value: { format: 'chr', data: node.f } }
  if (prop === 'Type') {
    return { status: 200, value: { format: 'chr', data: node.t ?? (node.f === 'node' ? '' : DEFAULT_LEAF_TYPE) } }
  }
  if (node.f === 'node') {
    // TND 1.2, 7.4: an interior node's value is the list of its children's names separated by '/'.
    const value: NodeValue = { format: 'node', data: view.childNames(path).join('/') }
    if (node.t !== undefined) value.type = node.t
    return { status: 200, value }
  }
  const value: NodeValue = { format: node.f }
  if (node.t !== undefined) value.type = node.t
  if (node.d !== undefined) value.data = node.d
  return { status: 200, value }
}

export function addOp(view: WritableView, ctx: TreeContext, uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
  const parsed = parse(ctx, uri)
  if (typeof parsed === 'number') return parsed
  if (parsed.prop !== undefined) return 405
  const path = parsed.path
  if (path === '') return 418
  // Adds into ./Inbox carry TNDS objects (DM Bootstrap 1.2); this device does not take them yet.
  if (path.startsWith(INBOX + '/')) return 406
  // The nearest existing ancestor: Add needs Add rights there (TND 1.2, 7.7.1), and creates what is missing.
  let anchor = parentPath(path)
  while (anchor !== '' && view.node(anchor) === undefined) anchor = parentPath(anchor)
  if (!allowed(view, anchor, 'Add', principal)) return 425
  if (view.node(path) !== undefined) return 418
  if (view.node(anchor)?.f !== 'node') return 405
  const format = canonicalFormat(value.format)
  if (format === undefined) return 415
  let node: TreeNode
  const type = value.type === undefined || value.type === '' || (format !== 'node' && value.type === DEFAULT_LEAF_TYPE) ? undefined : value.type
  if (format === 'node') {
    if (!isEmpty(value.data)) return 415
    node = new TreeNode('node', type, undefined, undefined)
  } else {
    const checked = checkLeafData(format, value.data)
    if (!checked.ok) return checked.status
    node = new TreeNode(format, type, checked.data, undefined)
  }
  const created: string[] = []
  for (let p = parentPath(path); p !== anchor; p = parentPath(p)) created.unshift(p)
  created.push(path)
  // DM RepPro 1.2 status 420: the tree is bounded so that one party cannot exhaust a device's memory.
  if (view.size() + created.length > ctx.maxNodes) return 420
  const top = created[0]!
  let topAcl: string | undefined
  if (principal !== 'device') {
    // A server keeps control of what it creates: unless the inherited ACL already lets it manage the new
    // node, the topmost created node gets an ACL naming it (DM TND is silent; the CP bootstrap profile gives
    // mapped accounts the same rights).
    const inherited = effectiveAcl(view, anchor)
    const id = principal.serverId
    const manages = (['Add', 'Delete', 'Get', 'Replace'] as const).every((c) => aclGrants(inherited, c, id))
    // A ServerID the ACL grammar cannot name (TND 7.7.1.5) leaves the node to its inherited ACL.
    if (!manages && isValidAcl(creatorAcl(id))) topAcl = creatorAcl(id)
  }
  for (const p of created) {
    if (p === path) view.put(p, p === top && topAcl ? new TreeNode(node.f, node.t, node.d, topAcl) : node)
    else view.put(p, new TreeNode('node', undefined, undefined, p === top ? topAcl : undefined))
  }
  return 200
}

export function replaceOp(view: WritableView, ctx: TreeContext, uri: string, value: NodeValue, principal: Principal): SyncMLStatus {
  const parsed = parse(ctx, uri)
  if (typeof parsed === 'number') return parsed
  const { path, prop } = parsed
  if (prop === 'ACL') return replaceAcl(view, path, value, principal)
  if (prop !== undefined) return 405
  const node = view.node(path)
  // Permanent nodes keep their values against servers; the device itself updates DevInfo/DevDetail leaves
  // (a new firmware version, say).
  if (isPermanent(path) && (principal !== 'device' || node?.f === 'node')) return 405
  if (node === undefined) return missing(view, path, 'Replace', principal)
  if (!allowed(view, path, 'Replace', principal)) return 425
  if (node.f === 'node') return 405
  const format = canonicalFormat(value.format)
  if (format === undefined) return 415
  if (format === 'node') return 405
  const checked = checkLeafData(format, value.data)
  if (!checked.ok) return checked.status
  const type = value.type === undefined || value.type === '' || value.type === DEFAULT_LEAF_TYPE ? undefined : value.type
  view.put(path, new TreeNode(format, type, checked.data, node.a))
  return 200
}

/**
 * TND 1.2, 7.7.1.3: an interior node's ACL may be changed by whoever has Replace on the node; any node's ACL
 * also by whoever has Replace on its parent; a leaf's own ACL never grants the change.
 */
function replaceAcl(view: WritableView, path: string, value: NodeValue, principal: Principal): SyncMLStatus {
  const node = view.node(path)
  if (node === undefined) return missing(view, path, 'Replace', principal)
  const bySelf = node.f === 'node' && allowed(view, path, 'Replace', principal)
  const byParent = path !== '' && allowed(view, parentPath(path), 'Replace', principal)
  if (!bySelf && !byParent) return 425
  const data = value.data
  const acl = data === undefined ? '' : typeof data === 'string' ? data : new TextDecoder().decode(data)
  if (!isValidAcl(acl)) return 400
  // TND 1.2, 7.7.1.1: the root always has an ACL value.
  if (path === '' && acl === '') return 405
  view.put(path, new TreeNode(node.f, node.t, node.d, acl === '' ? undefined : acl))
  return 200
}

export function deleteOp(view: WritableView, ctx: TreeContext, uri: string, principal: Principal): SyncMLStatus {
  const parsed = parse(ctx, uri)
  if (typeof parsed === 'number') return parsed
  if (parsed.prop !== undefined) return 405
  const path = parsed.path
  if (isPermanent(path)) return 405
  if (view.node(path) === undefined) return missing(view, path, 'Delete', principal)
  if (!allowed(view, path, 'Delete', principal)) return 425
  // TND 1.2: deleting an interior node deletes its whole subtree, whatever the children's own ACLs say.
  for (const p of descendantsDeepestFirst(view, path)) view.remove(p)
  view.remove(path)
  return 200
}

export function execOp(
  view: NodeView, ctx: TreeContext, uri: string, data: string | Uint8Array | undefined, principal: Principal,
): SyncMLStatus {
  const parsed = parse(ctx, uri)
  if (typeof parsed === 'number') return parsed
  if (parsed.prop !== undefined) return 405
  const path = parsed.path
  if (view.node(path) === undefined) return missing(view, path, 'Exec', principal)
  if (!allowed(view, path, 'Exec', principal)) return 425
  const handler = ctx.execHandler(path)
  return handler === undefined ? 405 : handler(data, principal)
}

export function readSecretOp(view: NodeView, uri: string): string | Uint8Array | undefined {
  const parsed = parseUri(uri)
  if (typeof parsed === 'number' || parsed.prop !== undefined) return undefined
  const node = view.node(parsed.path)
  return node === undefined || node.f === 'node' ? undefined : node.d
}

export function childrenOp(view: NodeView, uri: string): string[] | undefined {
  const parsed = parseUri(uri)
  if (typeof parsed === 'number' || parsed.prop !== undefined) return undefined
  const node = view.node(parsed.path)
  return node === undefined || node.f !== 'node' ? undefined : view.childNames(parsed.path)
}
