/**
 * The labwire demo: start a simulated SCPI power supply on a loopback TCP port, talk to it with
 * an ApplicationClient, print the conversation, shut everything down. Run it with `npm run demo`.
 *
 * @module
 */
import { ApplicationClient } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient } from '@labwire/transport-tcp'
import { startScpiPsu } from './scpi-psu.js'

/** The conversation: commands without `?` get no reply, queries get one line each. */
const CONVERSATION = [
  '*IDN?',
  '*RST',
  'VOLT 5',
  'CURR 0.2',
  'OUTP ON',
  'OUTP?',
  'MEAS:VOLT?', // 5 V into 10 ohm wants 0.5 A: the 0.2 A limit holds it at 2 V
  'MEAS:CURR?',
  'CURR 1',
  'VOLT?;CURR?;MEAS:VOLT?;MEAS:CURR?',
  'VOLT 99', // out of range: queued as -222
  'FOO:BAR 1', // unknown: queued as -113
  'SYST:ERR?',
  'SYST:ERR?',
  'SYST:ERR?',
  'OUTP OFF',
  'MEAS:VOLT?',
]

async function main(): Promise<void> {
  await using psu = await startScpiPsu()
  console.log(`simulated power supply listening on ${psu.host}:${psu.port}`)

  const scpi = textMarshaller(new SentinelBytesMarshaller('\n'))
  const client = new ApplicationClient(new TcpClient({ host: psu.host, port: psu.port }), scpi.marshall, scpi.unmarshall, {
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
