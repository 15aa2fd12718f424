// The BUILT labwire packages (their exports point at dist/): run `pnpm build` first (`pnpm bench` does).
export * from '@labwire/core'
export * from '@labwire/marshallers'
export * from '@labwire/application'
export * from '@labwire/transport-tcp'
export * from '@labwire/transport-telnet'
