/**
 * The @labwire/simulator README example: a programmatic device and a pyvisa-sim device file,
 * served over TCP, queried with an ApplicationClient, with a fault switched on at run time.
 * Run it with `node examples/dist/simulator-devices.js` after `pnpm build`.
 *
 * @module
 */
import { ApplicationClient } from '@labwire/application'
import { TimeoutError } from '@labwire/core'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { bundledDevice, Device, loadDevice, serveDevice } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'

interface PsuState {
  volts: number
  output: boolean
}

const psu = new Device<PsuState>({ name: 'psu', state: { volts: 0, output: false }, delimiter: ';', unknownCommand: 'ERR' })
  .command('*IDN?', () => 'ACME,PSU,1,1.0')
  .command('VOLT {v:f}', ({ v }, d) => {
    d.state.volts = v
  })
  .command('VOLT?', (_, d) => d.state.volts.toFixed(3))
  .command(/^OUTP (ON|OFF)$/, (m, d) => {
    d.state.output = m[1] === 'ON'
  })

const lines = textMarshaller(new SentinelBytesMarshaller('\n'))
async function ask(port: number, commands: string[]): Promise<void> {
  const client = new ApplicationClient(new TcpClient({ host: '127.0.0.1', port }), lines.marshall, lines.unmarshall, { timeout: 300 })
  await using session = await client.connect({ signal: AbortSignal.timeout(5_000) })
  for (const command of commands) {
    if (!command.includes('?')) {
      await session.send(command)
      continue
    }
    try {
      console.log(`${command} -> ${await session.sendReceive(command)}`)
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error
      console.log(`${command} -> ${error.name}`)
    }
  }
}

{
  await using server = await serveDevice(psu, { port: 0 })
  await ask(server.address?.port ?? 0, ['*IDN?', 'VOLT 12.5', 'VOLT?', 'BOGUS?'])
}
{
  const file = await loadDevice(bundledDevice('scpi-psu'))
  await using server = await serveDevice(file, { port: 0 })
  file.fault({ kind: 'no-reply', commands: ['VOLT?'] })
  await ask(server.address?.port ?? 0, ['*IDN?', 'VOLT?'])
}
