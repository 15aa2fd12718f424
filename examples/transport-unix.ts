import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ApplicationClient, ApplicationServer } from '@labwire/application'
import { SentinelBytesMarshaller, textMarshaller } from '@labwire/marshallers'
import { TcpClient, TcpServer } from '@labwire/transport-tcp'

// A simulator on a Unix domain socket: `path` instead of host + port, everything else the same.
const dir = mkdtempSync(join(tmpdir(), 'labwire-example-'))
const path = join(dir, 'psu.sock')
const line = textMarshaller(new SentinelBytesMarshaller('\n'))
const device = new ApplicationServer(line.unmarshall, line.marshall, (cmd: string) => (cmd === '*IDN?' ? 'labwire,UNIX-SIM,0,1' : 'ERR'))

// mode: the socket file's permissions (owner and group may connect). A socket file left behind by
// a server that died is removed first; a live server's is refused ('address in use').
const server = new TcpServer({ path, mode: 0o660, callback: device })
console.log(await server.listen()) // { host: '', port: 0, path: '…/psu.sock' }
console.log((statSync(path).mode & 0o777).toString(8)) // 660

const client = new ApplicationClient(new TcpClient({ path }), line.marshall, line.unmarshall, { timeout: 2_000 })
{
  await using session = await client.connect({ signal: AbortSignal.timeout(2_000) })
  console.log(await session.sendReceive('*IDN?')) // labwire,UNIX-SIM,0,1
}
await server.close() // also removes the socket file
rmSync(dir, { recursive: true, force: true })
