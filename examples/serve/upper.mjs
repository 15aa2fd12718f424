// A request function: with `framer = line` in its section, the host frames each request line,
// decodes it as text, calls this, and writes the reply back as a line.
export default function upper(text) {
  return text.toUpperCase()
}
