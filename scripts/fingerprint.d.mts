// Types for scripts/fingerprint.mjs (imported by TypeScript tests and the vitest setup).
export declare const root: string
export declare const cacheDir: string
export declare const STAGES: Record<'build' | 'typecheck' | 'eslint' | 'types' | 'packages', (path: string) => boolean>
export type Stage = keyof typeof STAGES
export declare function repoFiles(): string[]
export declare function fingerprint(stage: Stage, files?: string[]): string
export declare function recorded(stage: Stage): string | undefined
export declare function record(stage: Stage, fingerprint: string, seconds: number, extra?: Record<string, unknown>): void
export declare function buildParts(files?: string[]): Record<string, string>
export declare function forget(stage: Stage): void
export declare function clearBuildFailure(): void
export declare function packageDirs(): string[]
export declare function buildOutputsPresent(): boolean
export declare function buildUpToDate(files?: string[]): boolean
export declare function colorEnv(env?: NodeJS.ProcessEnv, isTTY?: boolean): { color: boolean; env: NodeJS.ProcessEnv }
export interface CommandResult {
  status: number
  output: string
}
export declare function runCommand(command: string, args: string[], options?: { env?: NodeJS.ProcessEnv; capture?: boolean }): Promise<CommandResult>
export interface BuildResult extends CommandResult {
  built: boolean
  seconds: number
  /** What was built: "everything", or the packages (with their dependents) and "examples". */
  what?: string
}
export declare function ensureBuilt(options?: { env?: NodeJS.ProcessEnv; onStart?: () => void; onWait?: (holder: number) => void }): Promise<BuildResult>
