// MQTT.js only picks worker timers in browsers; on Node its "auto" variant uses the native ones.
exports.setInterval = (fn, ms) => setInterval(fn, ms)
exports.clearInterval = (id) => clearInterval(id)
exports.setTimeout = (fn, ms) => setTimeout(fn, ms)
exports.clearTimeout = (id) => clearTimeout(id)
