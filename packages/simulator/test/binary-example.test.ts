import { afterEach, describe, expect, it, vi } from 'vitest'

// The README's binary example, run from its source (vitest resolves @labwire/* to the packages' sources).
describe('examples/simulator-binary.ts', () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  it('serves the binary oven, shows a corrupted frame and a truncated one as typed errors', { timeout: 10_000 }, async () => {
    const lines: string[] = []
    vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(' '))
    })
    await import('../../../examples/simulator-binary.js')
    expect(lines).toEqual([
      'READ -> 8100d7',
      'SET 300 -> 82',
      '0x7E -> ff7e',
      'state {"temperature":215,"setpoint":300}',
      'READ -> FramingError CRC-16/MODBUS mismatch',
      'READ -> 8100d7',
      'READ -> TimeoutError 3 bytes',
    ])
  })
})
