import { defineConfig } from 'tsup'

// Builds the examples against the workspace packages' own builds: @labwire/* stays an import,
// resolved at run time through the root devDependencies (workspace links to packages/*/dist).
export default defineConfig({
  entry: ['examples/*.ts', '!examples/tsup.config.ts'],
  outDir: 'examples/dist',
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  dts: false,
  splitting: false,
  external: [/^@labwire\//],
})
