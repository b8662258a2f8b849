// MQTT.js traces through `debug`; the agent logs through its own structured logger, so tracing is compiled out.
function debug() {
  const log = () => {}
  log.enabled = false
  log.extend = debug
  return log
}
debug.enable = () => {}
debug.disable = () => ''
debug.enabled = () => false
module.exports = debug
module.exports.default = debug
