// MQTT.js copies a packet before it keeps it in its outgoing store (rfdc/default). A packet is plain objects,
// arrays, bytes and scalars: this copies those the same way in a few lines instead of the general cloner.
function clone(value) {
  if (typeof value !== 'object' || value === null) return value
  if (Buffer.isBuffer(value)) return Buffer.from(value)
  if (ArrayBuffer.isView(value)) return new value.constructor(value)
  if (value instanceof Date) return new Date(value)
  if (Array.isArray(value)) return value.map(clone)
  const copy = {}
  for (const key of Object.keys(value)) copy[key] = clone(value[key])
  return copy
}
module.exports = clone
module.exports.default = clone
