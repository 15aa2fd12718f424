/**
 * Recording: a proxy between a client and a real instrument ({@link Proxy}) that reports every
 * frame, injects the simulator's faults frame by frame, and turns what it saw into a pyvisa-sim
 * device file ({@link recordDevice}).
 *
 * @module
 */
export * from './framers.js'
export * from './transcript.js'
export * from './record.js'
export * from './proxy.js'
