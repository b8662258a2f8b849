/**
 * The standard objects every DM 1.2 device has (DM StdObj 1.2): DevInfo, DevDetail, an empty DMAcc and Inbox,
 * with ACLs that let any server read the device description and no server change it.
 */
import { ManagementTree, type TreeOptions } from './tree.ts'
import type { NodeValue, Transaction } from './types.ts'

/**
 * The values the device describes itself with (binding.md §8), written at every start (`updateDescription`):
 * `./DevInfo/Man`, `./DevDetail/FwV`, `SwV`, `HwV`, and the agent's version. Undefined: the node's default.
 */
export interface DeviceDescription {
  man?: string
  fwV?: string
  swV?: string
  hwV?: string
  version?: string
}

/** Where each value of a `DeviceDescription` lives, and its default. */
export const DESCRIPTION_NODES = Object.freeze({
  man: { uri: './DevInfo/Man', fallback: 'unknown' },
  fwV: { uri: './DevDetail/FwV', fallback: '' },
  swV: { uri: './DevDetail/SwV', fallback: '' },
  hwV: { uri: './DevDetail/HwV', fallback: '' },
  /** Under `./DevDetail/Ext`, DevDetail's place for what a vendor adds (DM StdObj 1.2, 5.2.2). */
  version: { uri: './DevDetail/Ext/GwmoAgent/Version', fallback: '' },
})

export interface StandardTreeOptions extends TreeOptions, DeviceDescription {
  devId: string
  mod: string
  lang: string
  devTyp?: string
  oem?: string
  /** `./DevDetail/URI` limits; 0 means none. Defaults: depth 16, total length 512, segment length 64. */
  maxDepth?: number
  maxTotLen?: number
  maxSegLen?: number
}

/** DDF names of the standard objects (DM StdObj 1.2). */
export const DEVINFO_TYPE = 'urn:oma:mo:oma-dm-devinfo:1.0'
export const DEVDETAIL_TYPE = 'urn:oma:mo:oma-dm-devdetail:1.0'
export const INBOX_TYPE = 'urn:oma:mo:oma-dm-inbox:1.0'

export function createStandardTree(options: StandardTreeOptions): ManagementTree {
  const tree = new ManagementTree(options)
  const tx = tree.begin()
  const add = (uri: string, value: NodeValue): void => {
    tx.add(uri, value, 'device')
  }
  /** `chr` leaves below `parent`, in the order given. */
  const leaves = (parent: string, values: Record<string, string>): void => {
    for (const [name, data] of Object.entries(values)) add(`${parent}/${name}`, { format: 'chr', data })
  }
  add('./DevInfo', { format: 'node', type: DEVINFO_TYPE })
  const man = options.man ?? DESCRIPTION_NODES.man.fallback
  leaves('./DevInfo', { DevId: options.devId, Man: man, Mod: options.mod, DmV: '1.2', Lang: options.lang })
  add('./DevDetail', { format: 'node', type: DEVDETAIL_TYPE })
  add('./DevDetail/URI', { format: 'node' })
  leaves('./DevDetail/URI', {
    MaxDepth: String(options.maxDepth ?? 16),
    MaxTotLen: String(options.maxTotLen ?? 512),
    MaxSegLen: String(options.maxSegLen ?? 64),
  })
  leaves('./DevDetail', {
    DevTyp: options.devTyp ?? 'device',
    OEM: options.oem ?? man,
    FwV: options.fwV ?? DESCRIPTION_NODES.fwV.fallback,
    SwV: options.swV ?? DESCRIPTION_NODES.swV.fallback,
    HwV: options.hwV ?? DESCRIPTION_NODES.hwV.fallback,
  })
  add('./DevDetail/LrgObj', { format: 'bool', data: 'false' })
  if (options.version !== undefined) addLeaf(tx, DESCRIPTION_NODES.version.uri, options.version)
  add('./DMAcc', { format: 'node' })
  add('./Inbox', { format: 'node', type: INBOX_TYPE })
  // Any server reads the device description; none changes it. A DM Server may add a gateway's account (GwMO
  // 1.0, 8.4.1), which then belongs to the gateway; no party lists ./DMAcc (binding.md §6, the tree's rules in
  // dmacc-access.ts hold whatever this ACL says). ./Inbox is Add-only.
  const acls = { DevInfo: 'Get=*', DevDetail: 'Get=*', DMAcc: 'Add=*', Inbox: 'Add=*' }
  for (const [name, data] of Object.entries(acls)) tx.replace(`./${name}?prop=ACL`, { format: 'chr', data }, 'device')
  tx.commit()
  return tree
}

/** Adds a `chr` leaf, and the interior nodes on the way (below the top-level node) that are missing. */
function addLeaf(tx: Transaction, uri: string, data: string): number {
  const segments = uri.split('/')
  for (let i = 3; i < segments.length; i++) {
    const parent = segments.slice(0, i).join('/')
    if (tx.get(parent, 'device').status === 404) tx.add(parent, { format: 'node' }, 'device')
  }
  return tx.add(uri, { format: 'chr', data }, 'device')
}

/**
 * Writes the description's values into the tree as the device, each only when it differs from the node's
 * (undefined values give the node's default; an undefined `version` leaves the node as it is), in one commit.
 * Returns the URIs it changed: none when nothing is new, and then nothing is written.
 */
export function updateDescription(tree: ManagementTree, description: DeviceDescription): { ok: true; changed: string[] } | { ok: false; error: string } {
  const tx = tree.begin()
  const changed: string[] = []
  for (const [key, { uri, fallback }] of Object.entries(DESCRIPTION_NODES)) {
    const given = description[key as keyof DeviceDescription]
    if (key === 'version' && given === undefined) continue
    const value = given ?? fallback
    const current = tx.get(uri, 'device')
    if (current.status === 200 && current.value?.data === value) continue
    const status = current.status === 404 ? addLeaf(tx, uri, value) : tx.replace(uri, { format: 'chr', data: value }, 'device')
    if (status !== 200) {
      tx.rollback()
      return { ok: false, error: `${uri}: cannot be written (${status})` }
    }
    changed.push(uri)
  }
  if (changed.length === 0) {
    tx.rollback()
    return { ok: true, changed }
  }
  const committed = tx.commit()
  return committed.ok ? { ok: true, changed } : { ok: false, error: committed.failure.messages.join('; ') }
}
