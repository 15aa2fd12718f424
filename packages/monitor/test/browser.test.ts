// The live page in a real browser: Debian's Chromium, driven by playwright-core. Skipped loudly
// when Chromium is not installed (.ci/run installs it as root).
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundledDevice, loadDevice, SimulatorServer } from '@labwire/simulator'
import { TcpClient } from '@labwire/transport-tcp'
import { chromium, type Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Monitor } from '../src/index.js'
import { ensurePageBuilt } from './page-build.js'

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path))
if (CHROMIUM === undefined) console.warn('\n*** SKIPPING the monitor browser test: Debian chromium is not installed (apt-get install -y chromium) ***\n')
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url))

describe.skipIf(CHROMIUM === undefined)('monitor page in headless Chromium', () => {
  let browser: Browser
  let simulator: SimulatorServer
  let monitor: Monitor

  beforeAll(async () => {
    ensurePageBuilt()
    browser = await chromium.launch({
      executablePath: CHROMIUM ?? 'chromium',
      headless: true,
      timeout: 30_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
    monitor = new Monitor({ port: 0, sampleInterval: 200 })
    simulator = new SimulatorServer({ device: await loadDevice(bundledDevice('scpi-psu')), port: 0, filter: monitor.traceFilter('psu'), logger: monitor.serviceLogger('psu') })
    await simulator.listen()
    monitor.addService({ name: 'psu', simulator })
    await monitor.listen()
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await monitor?.close()
    await simulator?.close()
  })

  it('shows the service, counts commands live, toggles a fault the client then sees, and keeps a screenshot', async () => {
    const page = await browser.newPage()
    const errors: string[] = []
    page.on('pageerror', (error) => errors.push(error.message))
    const requests: string[] = []
    page.on('request', (request) => requests.push(request.url()))
    const monitorAddress = monitor.address
    const simAddress = simulator.address
    if (monitorAddress === undefined || simAddress === undefined) throw new Error('not listening')
    const base = `http://127.0.0.1:${monitorAddress.port}`
    await page.goto(`${base}/`, { timeout: 15_000 })
    const card = page.locator('section[data-service="psu"]')
    await card.waitFor({ timeout: 10_000 })
    await expect(card.locator('[data-testid="state"]').textContent()).resolves.toBe('ready')

    // Drive load with a real client and watch the page's command counter rise, without a reload.
    const before = Number(await card.locator('[data-testid="summary"]').getAttribute('data-commands'))
    await using session = await new TcpClient({ host: simAddress.host, port: simAddress.port, timeout: 2000 }).connect()
    const idn = new TextEncoder().encode('*IDN?\n')
    for (let i = 0; i < 25; i++) await session.request(idn).next()
    await page.waitForFunction(
      (min) => Number(document.querySelector('section[data-service="psu"] [data-testid="summary"]')?.getAttribute('data-commands')) >= min,
      before + 25,
      { timeout: 10_000 },
    )
    await page.waitForFunction(() => (document.querySelector('section[data-service="psu"] [data-testid="trace"]')?.textContent ?? '').includes('*IDN?'), undefined, { timeout: 10_000 })

    // Add a no-reply fault for *IDN? from the page; the client's next query times out.
    await card.locator('[data-testid="fault-kind"]').selectOption('no-reply')
    await card.locator('[data-testid="fault-match"]').fill('*IDN?')
    await card.locator('[data-testid="fault-add"]').click()
    await card.locator('[data-testid^="fault-"][type="checkbox"]').first().waitFor({ timeout: 10_000 })
    await using faulty = await new TcpClient({ host: simAddress.host, port: simAddress.port, timeout: 300 }).connect()
    await expect(faulty.request(idn).next()).rejects.toMatchObject({ name: 'TimeoutError' })

    // Switch it off from the page; the client is answered again.
    await card.locator('[data-testid^="fault-"][type="checkbox"]').first().uncheck()
    await expect.poll(() => simulator.device.faults.list().every((f) => !f.enabled), { timeout: 5000 }).toBe(true)
    await using healthy = await new TcpClient({ host: simAddress.host, port: simAddress.port, timeout: 2000 }).connect()
    const reply = await healthy.request(idn).next()
    expect(new TextDecoder().decode(reply.value as Uint8Array)).toContain('SIM-PSU')

    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'monitor.png'), fullPage: true })
    expect(errors).toEqual([])
    // Everything the page loaded came from the monitor itself.
    expect(requests.every((url) => url.startsWith(base))).toBe(true)
    await page.close()
  }, 60_000)
})
