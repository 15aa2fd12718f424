/// <reference lib="dom" />
// The monitor's live page. Bundled at build time (tsup → dist/page.js, uPlot included): the page
// loads nothing from anywhere but its own server. Every value from the server is set with
// textContent, never as HTML.
import uPlot from 'uplot'
import css from 'uplot/dist/uPlot.min.css'

interface Point {
  t: number
  rps: number
  p50: number | null
  p95: number | null
  p99: number | null
  errors: number
}
interface ProcessPoint {
  t: number
  rss: number
  heapUsed: number
  loopDelayP99: number
}
interface TraceLine {
  t: number
  peer: string
  dir: string
  hex: string
  text: string
  length: number
}
interface Fault {
  id: number
  kind: string
  enabled: boolean
  [key: string]: unknown
}
interface Service {
  name: string
  kind: string
  state: string
  address: string | null
  connections: { peer: string; since: number; exclusive?: boolean }[]
  holder: string | null
  queued: number
  commands: number
  history: Point[]
  trace: TraceLine[]
  simulator: { device: string; state: unknown; faults: Fault[]; cable: boolean } | null
}
interface Snapshot {
  now: number
  uptime: number
  draining: boolean
  process: ProcessPoint[]
  services: Service[]
  logs: { t: number; level: string; service: string; message: string }[]
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f4f6f9; }
header { display: flex; gap: 1rem; align-items: baseline; padding: .6rem 1rem; background: #1d2330; color: #fff; }
header h1 { font-size: 1.1rem; margin: 0; }
main { padding: 1rem; display: grid; gap: 1rem; }
section { background: #fff; border-radius: 6px; padding: .8rem 1rem; box-shadow: 0 1px 2px #0002; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
h3 { font-size: .9rem; margin: .6rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .15rem .5rem; border-bottom: 1px solid #e5e8ee; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; }
.state.ready { color: #177245; } .state.draining, .state.starting { color: #9a6700; } .state.failed, .state.stopped { color: #b42318; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
pre { background: #0f1420; color: #d8dee9; padding: .5rem; max-height: 16rem; overflow: auto; font-size: 12px; margin: 0; }
button { font: inherit; padding: .1rem .6rem; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
`

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] => {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value)
  for (const child of children) node.append(child)
  return node
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  return `${Math.round(s / 3600)} h`
}

async function api(method: string, path: string, body?: unknown): Promise<void> {
  const init: RequestInit = { method, headers: { 'content-type': 'application/json' } }
  if (body !== undefined) init.body = JSON.stringify(body)
  const response = await fetch(path, init)
  if (!response.ok) alert(`${method} ${path}: ${response.status} ${await response.text()}`)
}

interface ServiceView {
  root: HTMLElement
  state: HTMLElement
  summary: HTMLElement
  rps: uPlot
  latency: uPlot
  connections: HTMLTableSectionElement
  faults: HTMLElement
  simState: HTMLElement
  trace: HTMLPreElement
  paused: boolean
  cable: HTMLButtonElement
}

const views = new Map<string, ServiceView>()
let memoryChart: uPlot | undefined

function chart(title: string, series: { label: string; stroke: string }[], target: HTMLElement): uPlot {
  const opts: uPlot.Options = {
    title,
    width: 420,
    height: 180,
    series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, spanGaps: true }))],
    axes: [{}, { size: 60 }],
  }
  return new uPlot(opts, [[], ...series.map(() => [])], target)
}

function serviceView(service: Service, container: HTMLElement): ServiceView {
  const state = el('span', { class: 'state', 'data-testid': 'state' })
  const summary = el('span', { 'data-testid': 'summary' })
  const charts = el('div', { class: 'charts' })
  const connections = el('tbody')
  const faults = el('div', { 'data-testid': 'faults' })
  const simState = el('pre', { 'data-testid': 'sim-state' })
  const trace = el('pre', { 'data-testid': 'trace' })
  const pause = el('button', { type: 'button' }, 'pause trace')
  const cable = el('button', { type: 'button', 'data-testid': 'cable' }, 'cut cable')
  const root = el(
    'section',
    { 'data-service': service.name },
    el('h2', {}, `${service.name} `, el('small', {}, `(${service.kind})`), ' — ', state, ' — ', summary),
    charts,
    el('div', { class: 'grid2' }, el('div', {}, el('h3', {}, 'Connections'), el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'peer'), el('th', {}, 'age'), el('th', {}, 'exclusive'))), connections)), el('div', {}, el('h3', {}, 'Wire trace ', pause), trace)),
  )
  const view: ServiceView = {
    root,
    state,
    summary,
    rps: chart('requests / s', [{ label: 'req/s', stroke: '#2f6fde' }], charts),
    latency: chart('latency (ms)', [{ label: 'p50', stroke: '#177245' }, { label: 'p95', stroke: '#9a6700' }, { label: 'p99', stroke: '#b42318' }], charts),
    connections,
    faults,
    simState,
    trace,
    paused: false,
    cable,
  }
  pause.addEventListener('click', () => {
    view.paused = !view.paused
    pause.textContent = view.paused ? 'resume trace' : 'pause trace'
  })
  if (service.simulator !== null) {
    const kind = el('select', { 'data-testid': 'fault-kind' }, ...['no-reply', 'latency', 'junk', 'truncate', 'fragment', 'disconnect', 'quiet', 'cable-cut'].map((k) => el('option', { value: k }, k)))
    const match = el('input', { placeholder: 'only for command (optional)', 'data-testid': 'fault-match' })
    const add = el('button', { type: 'button', 'data-testid': 'fault-add' }, 'add fault')
    add.addEventListener('click', () => {
      const spec: Record<string, unknown> = { kind: kind.value }
      if (match.value !== '') spec.commands = [match.value]
      if (kind.value === 'latency') spec.latency = 200
      void api('POST', `/api/services/${encodeURIComponent(service.name)}/faults`, spec)
    })
    cable.addEventListener('click', () => {
      const connected = cable.dataset.connected !== 'false'
      void api('PUT', `/api/services/${encodeURIComponent(service.name)}/cable`, { connected: !connected })
    })
    root.append(el('div', { class: 'grid2' }, el('div', {}, el('h3', {}, 'Faults ', cable), faults, kind, match, add), el('div', {}, el('h3', {}, 'State'), simState)))
  }
  container.append(root)
  return view
}

function render(snapshot: Snapshot): void {
  const app = document.getElementById('app')
  if (app === null) return
  const status = document.getElementById('status')
  if (status !== null) status.textContent = `${snapshot.services.length} service(s) · up ${age(snapshot.uptime)}${snapshot.draining ? ' · draining' : ''}`
  let processSection = document.getElementById('process')
  if (processSection === null) {
    processSection = el('section', { id: 'process' }, el('h2', {}, 'Process'))
    app.append(processSection)
    memoryChart = chart('memory (MiB)', [{ label: 'rss', stroke: '#6b4fbb' }, { label: 'heap', stroke: '#2f6fde' }], processSection)
  }
  memoryChart?.setData([snapshot.process.map((p) => p.t / 1000), snapshot.process.map((p) => p.rss / 1048576), snapshot.process.map((p) => p.heapUsed / 1048576)])
  for (const service of snapshot.services) {
    let view = views.get(service.name)
    if (view === undefined) {
      view = serviceView(service, app)
      views.set(service.name, view)
    }
    view.state.textContent = service.state
    view.state.className = `state ${service.state}`
    const total = service.history.reduce((sum, p) => sum + p.rps, 0)
    const last = service.history.at(-1)
    view.summary.textContent = `${service.address ?? '-'} · ${service.connections.length} connection(s) · ${last?.rps ?? 0} req/s${service.kind === 'simulator' ? ` · ${service.commands} commands` : ''}${service.holder !== null ? ` · held by ${service.holder}` : ''}${service.queued > 0 ? ` · ${service.queued} queued` : ''}`
    view.summary.dataset.requests = String(total)
    view.summary.dataset.commands = String(service.commands)
    view.summary.dataset.connections = String(service.connections.length)
    const ts = service.history.map((p) => p.t / 1000)
    view.rps.setData([ts, service.history.map((p) => p.rps)])
    view.latency.setData([ts, service.history.map((p) => p.p50), service.history.map((p) => p.p95), service.history.map((p) => p.p99)])
    view.connections.replaceChildren(...service.connections.map((c) => el('tr', {}, el('td', {}, c.peer), el('td', {}, age(snapshot.now - c.since)), el('td', {}, c.exclusive === true || c.peer === service.holder ? 'yes' : ''))))
    if (!view.paused) view.trace.textContent = service.trace.map((line) => `${new Date(line.t).toISOString().slice(11, 23)} ${line.peer} ${line.dir === 'in' ? '<-' : line.dir === 'out' ? '->' : '=='} ${line.text}  [${line.hex}]${line.length > line.hex.length / 2 ? ` (+${line.length - line.hex.length / 2} bytes)` : ''}`).join('\n')
    const sim = service.simulator
    if (sim !== null) {
      view.simState.textContent = JSON.stringify(sim.state, null, 2)
      view.cable.dataset.connected = String(sim.cable)
      view.cable.textContent = sim.cable ? 'cut cable' : 'restore cable'
      view.faults.replaceChildren(
        ...sim.faults.map((fault) => {
          const toggle = el('input', { type: 'checkbox', 'data-testid': `fault-${fault.id}` })
          toggle.checked = fault.enabled
          toggle.addEventListener('change', () => void api('PATCH', `/api/services/${encodeURIComponent(service.name)}/faults/${fault.id}`, { enabled: toggle.checked }))
          const remove = el('button', { type: 'button' }, 'remove')
          remove.addEventListener('click', () => void api('DELETE', `/api/services/${encodeURIComponent(service.name)}/faults/${fault.id}`))
          const { id, kind, ...details } = fault
          const rest: Record<string, unknown> = { ...details }
          delete rest.enabled
          return el('div', {}, toggle, ` #${id} ${kind} ${JSON.stringify(rest)} `, remove)
        }),
      )
    }
  }
  let logs = document.getElementById('logs')
  if (logs === null) {
    logs = el('pre', { id: 'logs' })
    app.append(el('section', {}, el('h2', {}, 'Log'), logs))
  }
  logs.textContent = snapshot.logs.map((l) => `${new Date(l.t).toISOString().slice(11, 23)} ${l.level.padEnd(5)} ${l.service}: ${l.message}`).join('\n')
}

function start(): void {
  document.head.append(el('style', {}, css), el('style', {}, STYLE))
  const status = document.getElementById('status')
  const source = new EventSource('/events')
  source.addEventListener('snapshot', (event) => {
    render(JSON.parse((event as MessageEvent<string>).data) as Snapshot)
  })
  source.addEventListener('error', () => {
    if (status !== null) status.textContent = 'disconnected; retrying…'
  })
}

start()
