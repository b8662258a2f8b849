/**
 * Where the device learns its network location (binding.md §4.6): its addresses and its default gateway. The
 * monitor (`location.ts`) sees only the `LocationSource` port; the OS reads the kernel's view, the file source
 * serves tests and devices whose location is known some other way (`location.sourceFile`).
 */
import { readFile } from 'node:fs/promises'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'

export interface NetworkLocation {
  /** The device's own addresses, in the order the source gives them. */
  addresses: string[]
  /** The IP router its default route goes through, when it has one. */
  defaultGateway?: string
}

export interface LocationSource {
  /** The location now; rejects when the source cannot be read at all (the monitor logs and skips that poll). */
  read(): Promise<NetworkLocation>
}

/** A location as the monitor compares it: addresses deduplicated and sorted, so order never reads as a move. */
export function normalizeLocation(location: NetworkLocation): NetworkLocation {
  const addresses = [...new Set(location.addresses.map((a) => a.trim()).filter((a) => a !== ''))].sort()
  const gateway = location.defaultGateway?.trim()
  return gateway ? { addresses, defaultGateway: gateway } : { addresses }
}

// ---------------------------------------------------------------------------------------------------------------
// File source: `{ "addresses": ["192.0.2.7"], "defaultGateway": "192.0.2.1" }`

/** Reads the location from a JSON file at every call; a missing or malformed file rejects with the reason. */
export function fileLocationSource(path: string, read: (path: string) => Promise<string> = readText): LocationSource {
  return {
    async read() {
      let raw: unknown
      try {
        raw = JSON.parse(await read(path))
      } catch (error) {
        throw new Error(`location file ${path}: ${(error as Error).message}`)
      }
      const problem = locationFileProblem(raw)
      if (problem !== undefined) throw new Error(`location file ${path}: ${problem}`)
      // Freshly parsed and checked to hold nothing else: it is the location as it stands.
      return raw as NetworkLocation
    },
  }
}

function locationFileProblem(raw: unknown): string | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return 'not a JSON object'
  const { addresses, defaultGateway, ...rest } = raw as Record<string, unknown>
  const unknownKeys = Object.keys(rest)
  if (unknownKeys.length > 0) return `unknown key ${unknownKeys[0]}`
  if (!Array.isArray(addresses) || !addresses.every((a) => typeof a === 'string')) return 'addresses: not a list of strings'
  if (defaultGateway !== undefined && typeof defaultGateway !== 'string') return 'defaultGateway: not a string'
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// OS source: os.networkInterfaces() and the Linux routing tables in /proc

export interface OsLocationSourceOptions {
  /** `os.networkInterfaces` unless told (tests give a fixed table). */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>
  /** Reads a /proc file; a rejection means "not available here" and is tolerated. */
  readText?: (path: string) => Promise<string>
}

const PROC_ROUTE = '/proc/net/route'
const PROC_IPV6_ROUTE = '/proc/net/ipv6_route'
const PROC_IF_INET6 = '/proc/net/if_inet6'

/** Linux route flags (include/uapi/linux/route.h). */
const RTF_UP = 0x0001
const RTF_GATEWAY = 0x0002
const RTF_REJECT = 0x0200
/** Linux IPv6 address flags (include/uapi/linux/if_addr.h). */
const IFA_F_TEMPORARY = 0x01
const IFA_F_DEPRECATED = 0x20

/**
 * The kernel's view: every non-internal address except those that say nothing about where the device is
 * (IPv6 link-local addresses, derived from the MAC alone, and RFC 4941 temporary addresses, which rotate daily
 * and would report a move every day), and the default route's gateway (IPv4 first, else IPv6). Where /proc is
 * missing (not Linux, a sandbox) the addresses alone are reported.
 */
export function osLocationSource(options: OsLocationSourceOptions = {}): LocationSource {
  const interfaces = options.interfaces ?? networkInterfaces
  const read = options.readText ?? readText
  return {
    async read() {
      // A table that cannot be read counts as empty: it has no routes and no flagged addresses.
      const tables = [PROC_ROUTE, PROC_IPV6_ROUTE, PROC_IF_INET6].map((path) => read(path).catch(() => ''))
      const [route, route6, inet6] = await Promise.all(tables)
      const transient = transientIpv6Addresses(inet6)
      const addresses: string[] = []
      for (const entries of Object.values(interfaces())) {
        for (const entry of entries ?? []) {
          if (entry.internal) continue
          if (entry.family === 'IPv6' && (isLinkLocalIpv6(entry.address) || transient.has(entry.address.toLowerCase()))) continue
          addresses.push(entry.address)
        }
      }
      return { addresses, defaultGateway: defaultGatewayIpv4(route) ?? defaultGatewayIpv6(route6) }
    },
  }
}

function readText(path: string): Promise<string> {
  return readFile(path, 'utf8')
}

function isLinkLocalIpv6(address: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(address)
}

/** The whitespace-separated fields of each line of a /proc table that has at least `columns` of them. */
function rows(table: string, columns: number): string[][] {
  return table.split('\n').map((line) => line.trim().split(/\s+/)).filter((fields) => fields.length >= columns)
}

/** The gateway of the route with the lowest metric, among the default routes found. */
function lowestMetric(routes: ({ gateway: string; metric: number } | undefined)[]): string | undefined {
  let best: { gateway: string; metric: number } | undefined
  for (const route of routes) if (route && (best === undefined || route.metric < best.metric)) best = route
  return best?.gateway
}

/** Whether route flags say up and via a gateway. */
const upViaGateway = (flags: number) => (flags & (RTF_UP | RTF_GATEWAY)) === (RTF_UP | RTF_GATEWAY)

/**
 * The gateway of the IPv4 default route with the lowest metric, from /proc/net/route: columns Iface,
 * Destination, Gateway, Flags, RefCnt, Use, Metric, Mask…, addresses in host (little-endian) byte order.
 */
export function defaultGatewayIpv4(table: string): string | undefined {
  // The header line's Destination is `Destination`, so it is no default route.
  return lowestMetric(rows(table, 8).map(([, destination, gateway, flags, , , metric, mask]) => {
    if (destination !== '00000000' || mask !== '00000000' || !upViaGateway(parseInt(flags, 16))) return undefined
    if (!/^[0-9A-Fa-f]{8}$/.test(gateway)) return undefined
    const value = parseInt(gateway, 16)
    const dotted = [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24].join('.')
    return { gateway: dotted, metric: Number(metric) }
  }))
}

/**
 * The next hop of the IPv6 default route (::/0, up, via a gateway, not a reject route) with the lowest metric,
 * from /proc/net/ipv6_route: destination, prefix length, source, source prefix length, next hop, metric,
 * refcnt, use, flags, interface.
 */
export function defaultGatewayIpv6(table: string): string | undefined {
  return lowestMetric(rows(table, 10).map(([destination, prefix, , , nextHop, metric, , , flagsHex]) => {
    const flags = parseInt(flagsHex, 16)
    if (!/^0{32}$/.test(destination) || prefix !== '00' || /^0{32}$/.test(nextHop)) return undefined
    if (!upViaGateway(flags) || (flags & RTF_REJECT) !== 0) return undefined
    const gateway = ipv6FromHex(nextHop)
    return gateway === undefined ? undefined : { gateway, metric: parseInt(metric, 16) }
  }))
}

/** Temporary and deprecated IPv6 addresses, from /proc/net/if_inet6 (address, ifindex, prefix, scope, flags, name). */
export function transientIpv6Addresses(table: string): Set<string> {
  const out = new Set<string>()
  for (const [hex, , , , flags] of rows(table, 6)) {
    const address = parseInt(flags, 16) & (IFA_F_TEMPORARY | IFA_F_DEPRECATED) ? ipv6FromHex(hex) : undefined
    if (address !== undefined) out.add(address)
  }
  return out
}

/** 32 hex digits as the canonical text form (RFC 5952), which WHATWG URL parsing of an IPv6 host produces. */
function ipv6FromHex(hex: string): string | undefined {
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) return undefined
  const groups = hex.match(/.{4}/g)!.join(':')
  try {
    return new URL(`http://[${groups}]/`).hostname.slice(1, -1)
  } catch {
    return undefined
  }
}
