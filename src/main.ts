// Command-line entry of the bundle; the runtime wiring arrives with the agent runtime.
const version = process.env.GWMO_AGENT_VERSION ?? 'dev'
if (process.argv.includes('--version')) console.log(version)
else console.log('usage: gwmo-agent --config FILE')
