// Waits until the device's retained status on the broker reads the expected value (binding.md §2: the agent
// publishes a retained `online`, and `offline` as its will and on SIGTERM).
//   node await-status.mjs BROKER_URL DEVICE_ID EXPECTED TIMEOUT_SECONDS [TOPIC_PREFIX]
// Exits 0 once seen (printing the seconds it took), 1 on timeout or error.
import mqtt from 'mqtt'

const [url, deviceId, expected, timeoutSeconds, prefix = 'omadm/v1'] = process.argv.slice(2)
if (!url || !deviceId || !expected || !timeoutSeconds) {
  console.error('usage: await-status.mjs BROKER_URL DEVICE_ID EXPECTED TIMEOUT_SECONDS [TOPIC_PREFIX]')
  process.exit(2)
}
const topic = `${prefix}/${encodeURIComponent(deviceId)}/status`
const started = Date.now()
let last = '(none)'

const client = mqtt.connect(url, { protocolVersion: 5, clientId: `qemu-check-${process.pid}`, reconnectPeriod: 500 })
const timer = setTimeout(() => finish(1, `timed out after ${timeoutSeconds}s waiting for ${expected} on ${topic} (last: ${last})`),
  Number(timeoutSeconds) * 1000)

client.on('connect', () => client.subscribe(topic, { qos: 1 }))
client.on('message', (_topic, payload) => {
  last = payload.toString('utf8')
  if (last === expected) finish(0, `${((Date.now() - started) / 1000).toFixed(1)}`)
})
client.on('error', (error) => { last = `error: ${error.message}` })

function finish(code, message) {
  clearTimeout(timer)
  ;(code === 0 ? console.log : console.error)(message)
  client.end(true, () => process.exit(code))
}
