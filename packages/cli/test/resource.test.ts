import { describe, expect, it } from 'vitest'
import { ResourceError, UsageError, formatTerminator, isQuery, parseResource, parseTerminator } from '@labwire/cli'

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('parseResource', () => {
  it('reads VISA TCPIP SOCKET resources, any case, with and without a board number', () => {
    expect(parseResource('TCPIP::127.0.0.1::5025::SOCKET')).toMatchObject({ scheme: 'tcp', host: '127.0.0.1', port: 5025, board: 0 })
    expect(parseResource('tcpip3::psu.lab::4000::socket')).toMatchObject({ scheme: 'tcp', host: 'psu.lab', port: 4000, board: 3 })
    expect(parseResource('TCPIP0::[::1]::5025::SOCKET')).toMatchObject({ host: '::1', port: 5025 })
  })

  it('reads tcp:// and telnet:// URIs with default ports and query parameters', () => {
    expect(parseResource('tcp://127.0.0.1:5025')).toMatchObject({ scheme: 'tcp', host: '127.0.0.1', port: 5025 })
    expect(parseResource('tcp://dev')).toMatchObject({ port: 5025 })
    expect(parseResource('telnet://dev')).toMatchObject({ scheme: 'telnet', port: 23 })
    expect(parseResource('tcp://[::1]:99/')).toMatchObject({ host: '::1', port: 99 })
    const r = parseResource('telnet://10.0.0.5:2323?read_term=%0D%0A&write_term=%5Cr&timeout=2500')
    expect(r.readTerm).toEqual(bytes('\r\n'))
    expect(r.writeTerm).toEqual(bytes('\r'))
    expect(r.timeout).toBe(2500)
  })

  it.each([
    ['', 'empty'],
    ['127.0.0.1:5025', 'not a VISA resource or a URI'],
    ['http://x:80', 'unsupported scheme "http://"'],
    ['TCPIP::1.2.3.4::INSTR', 'INSTR resources are not supported'],
    ['TCPIP::1.2.3.4::5025', 'TCPIP[board]::host::port::SOCKET'],
    ['TCPIP::1.2.3.4::99999::SOCKET', 'invalid port "99999"'],
    ['TCPIP::1.2.3.4::0::SOCKET', 'invalid port "0"'],
    ['TCPIP::::5025::SOCKET', 'TCPIP[board]::host::port::SOCKET'],
    ['tcp://x:5025?foo=1', 'unknown query parameter "foo"'],
    ['tcp://x:5025?timeout=-1', 'timeout must be a whole number'],
    ['tcp://x:5025?read_term=', 'cannot be empty'],
    ['tcp://user:pw@x:5025', 'user names and passwords'],
    ['tcp://x:5025/path', 'unexpected path'],
  ])('refuses %j (%s) and lists the accepted forms', (text, reason) => {
    let error: unknown
    try {
      parseResource(text)
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ResourceError)
    expect(error).toBeInstanceOf(UsageError)
    const message = (error as Error).message
    expect(message).toContain(reason)
    expect(message).toContain('TCPIP[board]::host::port::SOCKET')
    expect(message).toContain('tcp://host')
    expect(message).toContain('telnet://host')
  })
})

describe('terminators', () => {
  it('parses escapes, names and literals, and writes them back', () => {
    expect(parseTerminator('\\n')).toEqual(bytes('\n'))
    expect(parseTerminator('\\r\\n')).toEqual(bytes('\r\n'))
    expect(parseTerminator('CRLF')).toEqual(bytes('\r\n'))
    expect(parseTerminator('lf')).toEqual(bytes('\n'))
    expect(parseTerminator('\\x03')).toEqual(new Uint8Array([3]))
    expect(parseTerminator('\n')).toEqual(bytes('\n'))
    expect(parseTerminator(';')).toEqual(bytes(';'))
    expect(formatTerminator(bytes('\r\n'))).toBe('\\r\\n')
    expect(formatTerminator(new Uint8Array([3]))).toBe('\\x03')
  })

  it('refuses empty and malformed ones', () => {
    expect(() => parseTerminator('')).toThrow(UsageError)
    expect(() => parseTerminator('none')).toThrow(UsageError)
    expect(() => parseTerminator('\\q')).toThrow(/bad escape/)
    expect(() => parseTerminator('\\xZZ')).toThrow(/bad escape/)
  })
})

describe('isQuery', () => {
  it('is a query when the header or the line ends with "?"', () => {
    expect(isQuery('*IDN?')).toBe(true)
    expect(isQuery('  VOLT?  ')).toBe(true)
    expect(isQuery('MEAS:VOLT? (@1)')).toBe(true)
    expect(isQuery('VOLT 5')).toBe(false)
    expect(isQuery('*RST')).toBe(false)
  })
})
