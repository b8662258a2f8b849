/**
 * The standard objects every DM 1.2 device has (DM StdObj 1.2): DevInfo, DevDetail, an empty DMAcc and Inbox,
 * with ACLs that let any server read the device description and no server change it.
 */
import { ManagementTree, type TreeOptions } from './tree.ts'
import type { NodeValue } from './types.ts'

export interface StandardTreeOptions extends TreeOptions {
  devId: string
  man: string
  mod: string
  lang: string
  devTyp?: string
  fwV?: string
  swV?: string
  hwV?: string
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
  leaves('./DevInfo', { DevId: options.devId, Man: options.man, Mod: options.mod, DmV: '1.2', Lang: options.lang })
  add('./DevDetail', { format: 'node', type: DEVDETAIL_TYPE })
  add('./DevDetail/URI', { format: 'node' })
  leaves('./DevDetail/URI', {
    MaxDepth: String(options.maxDepth ?? 16),
    MaxTotLen: String(options.maxTotLen ?? 512),
    MaxSegLen: String(options.maxSegLen ?? 64),
  })
  leaves('./DevDetail', {
    DevTyp: options.devTyp ?? 'device',
    OEM: options.oem ?? options.man,
    FwV: options.fwV ?? '',
    SwV: options.swV ?? '',
    HwV: options.hwV ?? '',
  })
  add('./DevDetail/LrgObj', { format: 'bool', data: 'false' })
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
