import { defineConfig } from 'tsup'

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
  },
  {
    // The live page's script: a browser bundle with uPlot (and its CSS, as text) inside, so the page
    // loads nothing from the network.
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
  },
])
