/**
 * The labwire demo: serve the simulated SCPI power supply (a pyvisa-sim device file shipped with
 * @labwire/simulator, packages/simulator/devices/scpi-psu.yaml) on a loopback TCP port, talk to it
 * with an ApplicationClient, print the conversation, shut everything down. Run it with `npm run demo`.
 *
 * @module
 */
import { ApplicationClient } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { bundledDevice, loadDevice, serveDevice } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'

/** The conversation: commands without `?` get no reply, queries get one line each. */
const CONVERSATION = [
  '*IDN?',
  '*RST',
  'VOLT 5',
  'CURR 0.2',
  'OUTP 1',
  'OUTP?',
  'VOLT?',
  'CURR?',
  'VOLT 99', // out of range (0 to 30 V): queued as a command error
  'FOO:BAR 1', // unknown: queued as a command error
  'SYST:ERR?',
  'SYST:ERR?',
  'SYST:ERR?',
  '*ESR?', // the command-error bit (32) of the event status register
  'OUTP 0',
  'OUTP?',
]

async function main(): Promise<void> {
  const device = await loadDevice(bundledDevice('scpi-psu'), { eom: 'TCPIP SOCKET' })
  await using psu = await serveDevice(device, { host: '127.0.0.1', port: 0 })
  const { host, port } = psu.address ?? { host: '127.0.0.1', port: 0 }
  console.log(`simulated power supply listening on ${host}:${port}`)

  const scpi = textMarshaller(new SentinelBytesMarshaller('\n'))
  const client = new ApplicationClient(new TcpClient({ host, port }), scpi.marshall, scpi.unmarshall, {
    timeout: 2_000,
  })
  await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })

  for (const command of CONVERSATION) {
    console.log(`> ${command}`)
    if (command.includes('?')) {
      console.log(`< ${await session.sendReceive(command)}`)
    } else {
      await session.send(command)
    }
  }
  console.log('demo finished')
}

try {
  await main()
} catch (error) {
  console.error('demo failed:', error)
  process.exitCode = 1
}
