import { defineConfig, type Options } from 'tsup'

const library: Options = {
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
}

// The live page's script: a browser bundle with uPlot (and its CSS, as text) inside, so the page
// loads nothing from the network. Written to dist/page.js, next to the built module.
const page: Options = {
  entry: { page: 'src/page/app.ts' },
  format: ['iife'],
  platform: 'browser',
  target: 'es2022',
  minify: true,
  noExternal: [/.*/],
  outExtension: () => ({ js: '.js' }),
  loader: { '.css': 'text' },
  sourcemap: false,
  clean: false,
  dts: false,
}

// `tsup --env.PAGE_ONLY 1` builds the page alone (the browser test does, when it is stale).
export default defineConfig((options) => (options.env?.PAGE_ONLY === '1' ? [page] : [library, page]))
