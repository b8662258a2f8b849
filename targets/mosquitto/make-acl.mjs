// Makes a mosquitto acl_file for gwmo-agent devices and their parties (binding.md §6, least-privilege broker):
// each device reads only its own topics and publishes only its own status and to its parties; only its parties
// publish to its topics (DM Servers and gateways on `dm` and `notification`, bootstrap servers on `bootstrap`).
//
//   node make-acl.mjs WORLD.json [ACL_FILE]     without ACL_FILE the ACL goes to stdout
//
// WORLD.json (see world.example.json):
//   { "prefix": "omadm/v1",                        optional, the agent's topicPrefix
//     "devices": [ { "id": "<DevId>",
//                    "parties": [ { "id": "<ServerID>", "role": "server" | "gateway" | "bootstrap",
//                                   "channels": ["dm", ...],   optional: the device's topics it publishes to
//                                   "topic": "<AppAddr path>"  optional: where the device sends to it instead
//                                 } ] } ],
//     "observers": ["<name>"] }                    optional: may read every listed device's status
//
// Every client's MQTT user name is encodeURIComponent of its identity (a device's DevId, a party's ServerID, an
// observer's name): exactly the topic level of its own topics, so one `pattern` line covers what each client
// may do on its own topics (mosquitto substitutes no user name holding `/`, `+` or `#`, and this form has none).
// A bootstrap server has no LocURI in the binding; give it any stable name.
import { readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const DEFAULT_PREFIX = 'omadm/v1'
const CHANNELS = ['dm', 'notification', 'bootstrap']
/** The device's topics each kind of party publishes to, unless its entry says `channels` (binding.md §2). */
export const ROLE_CHANNELS = Object.freeze({ server: ['dm', 'notification'], gateway: ['dm', 'notification'], bootstrap: ['bootstrap'] })

/** The MQTT user name of an identity: its topic level. */
export function usernameFor(id) {
  return encodeURIComponent(id)
}

class AclError extends Error {}

const fail = (where, message) => {
  throw new AclError(where === '' ? message : `${where}: ${message}`)
}

function object(value, where, keys) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(where, 'must be an object')
  for (const key of Object.keys(value)) if (!keys.includes(key)) fail(`${where}.${key}`.replace(/^\./, ''), `unknown key (known: ${keys.join(', ')})`)
  return value
}

function list(value, where) {
  if (!Array.isArray(value)) fail(where, 'must be a list')
  return value
}

/** A topic or prefix an ACL line can hold: levels without wildcards, blanks, `%` (mosquitto's pattern escape). */
function topicText(value, where, what) {
  if (typeof value !== 'string' || value === '' || /[+#%\s\u0000-\u001f\u007f]/.test(value) || value.split('/').includes('')) {
    fail(where, `must be ${what} without "+", "#", "%", blanks or empty levels`)
  }
  return value
}

function identity(value, where) {
  if (typeof value !== 'string' || value === '') fail(where, 'must be a non-empty string')
  try {
    return usernameFor(value)
  } catch {
    return fail(where, 'is not valid Unicode')
  }
}

/**
 * The acl_file text for `world` (the parsed WORLD.json), or the first thing wrong with it, naming where.
 * @returns {{ ok: true, text: string } | { ok: false, error: string }}
 */
export function makeAcl(world) {
  try {
    return { ok: true, text: render(world) }
  } catch (error) {
    if (error instanceof AclError) return { ok: false, error: error.message }
    throw error
  }
}

function render(world) {
  object(world, '', ['prefix', 'devices', 'observers'])
  const prefix = world.prefix === undefined ? DEFAULT_PREFIX : topicText(world.prefix, 'prefix', 'topic levels')
  const topic = (user, channel) => `${prefix}/${user}/${channel}`
  /** User name → its lines, in the order first given; a line given twice is written once. */
  const users = new Map()
  const grant = (user, line) => {
    if (!users.has(user)) users.set(user, new Set())
    users.get(user).add(line)
  }
  const devices = list(world.devices, 'devices')
  const observers = world.observers === undefined ? [] : list(world.observers, 'observers').map((o, k) => identity(o, `observers[${k}]`))

  devices.forEach((entry, d) => {
    const where = `devices[${d}]`
    object(entry, where, ['id', 'parties'])
    const device = identity(entry.id, `${where}.id`)
    // The device's own lines come first in the file, before its parties'.
    if (!users.has(device)) users.set(device, new Set())
    list(entry.parties, `${where}.parties`).forEach((p, k) => {
      const at = `${where}.parties[${k}]`
      object(p, at, ['id', 'role', 'channels', 'topic'])
      const party = identity(p.id, `${at}.id`)
      if (!Object.hasOwn(ROLE_CHANNELS, p.role)) fail(`${at}.role`, `must be one of ${Object.keys(ROLE_CHANNELS).join(', ')}`)
      const channels = p.channels === undefined ? ROLE_CHANNELS[p.role] : list(p.channels, `${at}.channels`)
      if (channels.length === 0 || !channels.every((c) => CHANNELS.includes(c))) fail(`${at}.channels`, `must list some of ${CHANNELS.join(', ')}`)
      for (const channel of channels) grant(party, `topic write ${topic(device, channel)}`)
      if (p.role === 'bootstrap') {
        // No answer goes to a bootstrap server (binding.md §2), and it has no need to see the device's status.
        if (p.topic !== undefined) fail(`${at}.topic`, 'a bootstrap server gets nothing from the device')
        return
      }
      // The device answers on the party's own `dm` topic, or on the topic its AppAddr names on this broker.
      const to = p.topic === undefined ? topic(party, 'dm') : topicText(p.topic, `${at}.topic`, 'a topic')
      grant(device, `topic write ${to}`)
      if (p.topic !== undefined) grant(party, `topic read ${to}`)
      grant(party, `topic read ${topic(device, 'status')}`)
    })
    for (const observer of observers) grant(observer, `topic read ${topic(device, 'status')}`)
  })

  const out = [
    '# mosquitto acl_file for gwmo-agent, made by make-acl.mjs: make it again rather than edit it.',
    '# User names are encodeURIComponent(identity): a device\'s DevId, a party\'s ServerID (binding.md §6).',
    '',
    '# Every client reads its own topics and publishes its own retained status (the device\'s will among them).',
    `pattern read ${topic('%u', '#')}`,
    `pattern write ${topic('%u', 'status')}`,
  ]
  for (const [user, lines] of users) if (lines.size > 0) out.push('', `user ${user}`, ...lines)
  return out.join('\n') + '\n'
}

function main(argv) {
  const [input, output, ...rest] = argv
  if (input === undefined || rest.length > 0 || input.startsWith('-')) {
    process.stderr.write('usage: node make-acl.mjs WORLD.json [ACL_FILE]\n')
    return 2
  }
  let text
  try {
    text = readFileSync(input, 'utf8')
  } catch (error) {
    process.stderr.write(`make-acl: ${input}: cannot read (${error.code ?? error.message})\n`)
    return 1
  }
  let world
  try {
    world = JSON.parse(text)
  } catch (error) {
    process.stderr.write(`make-acl: ${input}: not JSON (${error.message})\n`)
    return 1
  }
  const made = makeAcl(world)
  if (!made.ok) {
    process.stderr.write(`make-acl: ${input}: ${made.error}\n`)
    return 1
  }
  if (output === undefined) {
    process.stdout.write(made.text)
    return 0
  }
  // Beside the target and renamed over it, so a broker reloading meanwhile never reads half a file.
  const temporary = join(dirname(resolve(output)), `.${basename(output)}.${process.pid}.tmp`)
  try {
    writeFileSync(temporary, made.text, { mode: 0o644 })
    renameSync(temporary, output)
  } catch (error) {
    rmSync(temporary, { force: true })
    process.stderr.write(`make-acl: ${output}: cannot write (${error.code ?? error.message})\n`)
    return 1
  }
  return 0
}

// Run as a program (also through a symbolic link), not when a test imports it.
const realpath = (path) => {
  try {
    return realpathSync(resolve(path))
  } catch {
    return undefined
  }
}
// Run as a program, not imported; a bundle that carries this module (the bench's) is a program of its own.
const isProgram = process.argv[1] !== undefined && /make-acl\.mjs$/.test(process.argv[1]) &&
  realpath(process.argv[1]) === realpath(fileURLToPath(import.meta.url))
if (isProgram) {
  process.exitCode = main(process.argv.slice(2))
}
