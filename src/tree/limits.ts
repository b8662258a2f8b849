/**
 * The bounds of a management tree (binding.md §11): past any of them an `Add` or `Replace` answers 420 (Device
 * full, OMA DM RepPro 1.2) and changes nothing, so that no party can exhaust the device, nor one party starve
 * the others. The agent's values come from its configuration (`limits`, `CONFIG_DEFAULTS`); a tree built without
 * any has only the node cap.
 */
import { byteLength, nodeBytes, type NodeView, type TreeNode } from './node.ts'

export interface TreeLimits {
  /** Most nodes the tree holds, the root included. */
  maxNodes: number
  /** Most bytes its nodes hold (`nodeBytes`: path, type, ACL and data). */
  treeBytes: number
  /** Most bytes of one leaf's data. */
  leafBytes: number
  /** Most nodes that one party added (`TreeNode.c`) the tree may hold; the device's own count for no party. */
  nodesPerParty: number
  /** Most bytes of those nodes. */
  bytesPerParty: number
}

export const DEFAULT_TREE_LIMITS: Readonly<TreeLimits> = Object.freeze({
  maxNodes: 2000,
  treeBytes: Infinity,
  leafBytes: Infinity,
  nodesPerParty: Infinity,
  bytesPerParty: Infinity,
})

/** DM RepPro 1.2: 420 Device full. */
export const DEVICE_FULL = 420

/** The limits given, the defaults for the rest; a value that is not a number ≥ 0 is refused. */
export function treeLimits(given: Partial<TreeLimits> = {}): Readonly<TreeLimits> {
  const limits = { ...DEFAULT_TREE_LIMITS }
  for (const key of Object.keys(limits) as (keyof TreeLimits)[]) {
    const value = given[key]
    if (value === undefined) continue
    if (!(value >= 0)) throw new RangeError(`tree limit ${key} must be a number ≥ 0`)
    limits[key] = value
  }
  return Object.freeze(limits)
}

/**
 * Whether `view` can take the nodes an `Add` creates (parents first, the added node last) from `party` (undefined
 * for the device): the leaf's size, the tree's nodes and bytes, and the party's own nodes and bytes.
 */
export function canAdd(view: NodeView, limits: TreeLimits, added: [string, TreeNode][], party: string | undefined): boolean {
  const last = added[added.length - 1]
  if (last === undefined) return true
  if (byteLength(last[1].d) > limits.leafBytes) return false
  if (view.size() + added.length > limits.maxNodes) return false
  let bytes = 0
  for (const [path, node] of added) bytes += nodeBytes(path, node)
  if (view.bytes() + bytes > limits.treeBytes) return false
  if (party === undefined) return true
  const used = view.usage(party)
  return used.nodes + added.length <= limits.nodesPerParty && used.bytes + bytes <= limits.bytesPerParty
}

/**
 * Whether `view` can take `after` in place of `before` at `path`, written by `party` (undefined for the device).
 * A change that does not grow the tree always can (a tree over a lowered limit still takes its own updates), and
 * so can the device's own (its bookkeeping, a nonce or a gateway's mark, must never fail for want of room: the
 * parties' quotas keep it); a party's growth must fit the tree's bytes and those of the node's adder.
 */
export function canReplace(view: NodeView, limits: TreeLimits, path: string, before: TreeNode, after: TreeNode, party: string | undefined): boolean {
  if (byteLength(after.d) > limits.leafBytes && byteLength(after.d) > byteLength(before.d)) return false
  const grows = nodeBytes(path, after) - nodeBytes(path, before)
  if (grows <= 0 || party === undefined) return true
  if (view.bytes() + grows > limits.treeBytes) return false
  return after.c === undefined || view.usage(after.c).bytes + grows <= limits.bytesPerParty
}
