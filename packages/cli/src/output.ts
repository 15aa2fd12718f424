/**
 * Resolve once everything written to each stream has been handed to the operating system (a
 * slow reader on a pipe is waited for, however long it takes); `false` if a stream failed or was
 * closed first (EPIPE: the reader went away), so some output was lost.
 */
export async function flushOutput(streams: readonly NodeJS.WritableStream[]): Promise<boolean> {
  const results = await Promise.all(streams.map(flushOne))
  return results.every(Boolean)
}

function flushOne(stream: NodeJS.WritableStream): Promise<boolean> {
  const writable = stream as NodeJS.WritableStream & { destroyed?: boolean; writableLength?: number; errored?: unknown; writableFinished?: boolean }
  if (writable.errored != null) return Promise.resolve(false)
  if (writable.destroyed === true) return Promise.resolve((writable.writableLength ?? 0) === 0)
  return new Promise<boolean>((resolve) => {
    const onError = (): void => resolve(false)
    stream.once('error', onError)
    // An empty write's callback runs after everything written before it is flushed (or with the error).
    stream.write('', (error?: Error | null) => {
      stream.off('error', onError)
      resolve(error == null && writable.errored == null)
    })
  })
}
