// speedysvc's rule: the export named like the section ([Echo]) is served. This one is a
// ByteHandler function: it gets the connection's byte stream and frames nothing (echoes a chunk).
export async function Echo(bytes) {
  const next = await bytes.next()
  return next.done ? undefined : next.value
}
