/**
 * Running totals of a set of nodes, kept as nodes come and go so that a bound is checked without walking the
 * tree (binding.md §11): their bytes, and for each party the nodes it added and their bytes. The committed tree
 * keeps totals; a transaction's working copy keeps differences to the view below it (negative when it removes).
 */
import { nodeBytes, type TreeNode, type Usage } from './node.ts'

const NONE: Readonly<Usage> = Object.freeze({ nodes: 0, bytes: 0 })

export class Tally {
  bytes = 0
  /** Made for the first node a party added: most trees hold none. */
  #parties: Map<string, Usage> | undefined

  /** The node at `path` was `before` and is now `after` (either may be absent). */
  change(path: string, before: TreeNode | undefined, after: TreeNode | undefined): void {
    if (before !== undefined) this.#add(before.c, -1, -nodeBytes(path, before))
    if (after !== undefined) this.#add(after.c, 1, nodeBytes(path, after))
  }

  usage(party: string): Usage {
    return this.#parties?.get(party) ?? NONE
  }

  /** Parties this tally counts more nodes for (for a difference: those that added nodes in it). */
  adders(): string[] {
    return [...(this.#parties ?? [])].filter(([, u]) => u.nodes > 0).map(([party]) => party)
  }

  /** Adds another tally's counts to this one's (a nested transaction's difference, a shared base's totals). */
  addAll(other: Tally): void {
    this.bytes += other.bytes
    for (const [party, u] of other.#parties ?? []) this.#party(party, u.nodes, u.bytes)
  }

  #add(party: string | undefined, nodes: number, bytes: number): void {
    this.bytes += bytes
    if (party !== undefined) this.#party(party, nodes, bytes)
  }

  #party(party: string, nodes: number, bytes: number): void {
    const parties = (this.#parties ??= new Map())
    const u = parties.get(party)
    if (u === undefined) parties.set(party, { nodes, bytes })
    else {
      u.nodes += nodes
      u.bytes += bytes
      if (u.nodes === 0 && u.bytes === 0) parties.delete(party)
    }
  }
}

/** A view's usage: the one below it plus a difference. */
export function plus(below: Usage, delta: Usage): Usage {
  return delta === NONE ? below : { nodes: below.nodes + delta.nodes, bytes: below.bytes + delta.bytes }
}
