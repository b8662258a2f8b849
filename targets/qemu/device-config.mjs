// Writes the emulated device's configuration into its root file system: the given JSON config (defaults to
// device-config.json here) pointed at the private broker, its factory bootstrap copied in beside it.
//   node device-config.mjs ROOTFS BROKER_URL [CONFIG_JSON]
// Prints the host path of the written config.json. Relative paths in CONFIG_JSON resolve against its folder.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const [rootfs, brokerUrl, source = join(dirname(fileURLToPath(import.meta.url)), 'device-config.json')] =
  process.argv.slice(2)
if (!rootfs || !brokerUrl) {
  console.error('usage: device-config.mjs ROOTFS BROKER_URL [CONFIG_JSON]')
  process.exit(2)
}
const config = JSON.parse(readFileSync(source, 'utf8'))
const etc = join(rootfs, 'etc', 'gwmo-agent')
mkdirSync(etc, { recursive: true })

const bootstrap = resolve(dirname(source), config.factoryBootstrap)
copyFileSync(bootstrap, join(etc, basename(bootstrap)))
config.factoryBootstrap = `/etc/gwmo-agent/${basename(bootstrap)}`
config.broker = { ...config.broker, url: brokerUrl }
config.stateDir = '/var/lib/gwmo-agent'

const out = join(etc, 'config.json')
writeFileSync(out, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 })
console.log(out)
