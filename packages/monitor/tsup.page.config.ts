import { defineConfig } from 'tsup'

// The live page's script: a browser bundle with uPlot (and its CSS, as text) inside, so the page
// loads nothing from the network. Written to dist/page.js, next to the built module.
export default defineConfig({
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
})
