/**
 * What the device says of itself (binding.md §8), read from the OS at every start: `./DevDetail/FwV` the kernel
 * release, `SwV` the OS (`/etc/os-release` `PRETTY_NAME`), `HwV` the board (`/proc/device-tree/model`, else DMI
 * `product_name`), `./DevInfo/Man` the maker (the vendor prefix of the device tree's first `compatible`, else
 * DMI `sys_vendor`), and `./DevDetail/Ext/GwmoAgent/Version` the agent's version. The configuration's `devInfo`
 * values win (`describeDevice`). A file that cannot be read, or holds no usable name, gives nothing: its node
 * keeps the standard tree's default.
 */
import { readFile } from 'node:fs/promises'
import { release } from 'node:os'
import { join } from 'node:path'
import type { DevInfoConfig } from '../config.ts'
import type { DeviceDescription } from '../tree/index.ts'

export interface ReadDeviceOptions {
  /**
   * A directory standing for `/` (tests): every file is read under it, the kernel release too
   * (`proc/sys/kernel/osrelease`); without it, the kernel release is the system's (`uname`).
   */
  root?: string
  /** The agent's version. */
  version?: string
}

/** The files, relative to the root; the first one readable of each list is used. */
const FILES = {
  osRelease: ['etc/os-release', 'usr/lib/os-release'],
  model: 'proc/device-tree/model',
  compatible: 'proc/device-tree/compatible',
  product: 'sys/class/dmi/id/product_name',
  vendor: 'sys/class/dmi/id/sys_vendor',
  kernel: 'proc/sys/kernel/osrelease',
}

/** More than this is no name (a file that is not what it should be): it is left out. */
const MAX_CHARS = 255
/** Bytes read of a file at most. */
const MAX_FILE_BYTES = 64 * 1024

/** The OS's values, each undefined when its files cannot tell (`describeDevice` then leaves the default). */
export async function readDevice(options: ReadDeviceOptions = {}): Promise<DeviceDescription> {
  const root = options.root ?? '/'
  const read = (path: string) => readText(join(root, path))
  const [osRelease, model, compatible, product, vendor, kernel] = await Promise.all([
    read(FILES.osRelease[0]!).then((text) => text ?? read(FILES.osRelease[1]!)),
    read(FILES.model),
    read(FILES.compatible),
    read(FILES.product),
    read(FILES.vendor),
    options.root === undefined ? release() : read(FILES.kernel),
  ])
  const described: DeviceDescription = {}
  const set = (key: keyof DeviceDescription, value: string | undefined) => {
    const name = value === undefined ? undefined : nameOf(value)
    if (name !== undefined) described[key] = name
  }
  set('fwV', kernel)
  set('swV', osRelease === undefined ? undefined : prettyName(osRelease))
  set('hwV', firstOf(model) ?? firstOf(product))
  // `compatible` lists "vendor,model" strings, most specific first (Devicetree Specification 0.4, 2.3.1).
  const dtVendor = firstOf(compatible)?.split(',')
  set('man', (dtVendor !== undefined && dtVendor.length > 1 ? dtVendor[0] : undefined) ?? firstOf(vendor))
  if (options.version !== undefined) described.version = options.version
  return described
}

/** The description nodes' values: the configuration's where it sets one, else the device's own. */
export function describeDevice(devInfo: DevInfoConfig, device: DeviceDescription): DeviceDescription {
  const described = { ...device }
  for (const key of ['man', 'fwV', 'swV', 'hwV'] as const) {
    const configured = devInfo[key]
    if (configured !== undefined) described[key] = configured
  }
  return described
}

/** The description's keys `readDevice` found nothing for (a debug line says so). */
export function unread(device: DeviceDescription): string[] {
  return (['man', 'fwV', 'swV', 'hwV'] as const).filter((key) => device[key] === undefined)
}

/**
 * `PRETTY_NAME` of an os-release file (os-release(5): shell-style assignments, the value optionally quoted,
 * `\` escaping `"`, `\`, `$` and `` ` `` in double quotes; the last assignment counts).
 */
export function prettyName(text: string): string | undefined {
  let value: string | undefined
  for (const line of text.split('\n')) {
    const match = /^\s*PRETTY_NAME=(.*)$/.exec(line)
    if (match === null) continue
    const raw = match[1]!.trim()
    const quote = raw[0]
    if ((quote === '"' || quote === "'") && raw.length >= 2 && raw.endsWith(quote)) {
      const inner = raw.slice(1, -1)
      value = quote === '"' ? inner.replace(/\\([\\"$`])/g, '$1') : inner
    } else {
      value = raw
    }
  }
  return value
}

/** The first of a file's NUL- or newline-separated strings (device tree properties end in NUL, sysfs in LF). */
function firstOf(text: string | undefined): string | undefined {
  return text?.split(/[\0\n]/)[0]
}

/** A value fit for a `chr` leaf: trimmed, not empty, short, no control characters. */
function nameOf(text: string): string | undefined {
  const value = text.trim()
  // eslint-disable-next-line no-control-regex
  return value === '' || value.length > MAX_CHARS || /[\u0000-\u001f\u007f]/.test(value) ? undefined : value
}

async function readText(path: string): Promise<string | undefined> {
  try {
    const bytes = await readFile(path)
    return bytes.length > MAX_FILE_BYTES ? undefined : bytes.toString('utf8')
  } catch {
    return undefined
  }
}
