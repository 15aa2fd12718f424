// A silent vitest reporter for scripts/dev.mjs: at the end of the run it writes one plain line,
// `vitest: N passed, N failed, N skipped`, to the file named by LABWIRE_VITEST_SUMMARY (dev.mjs
// prints it last, for CI tooling). A test file that failed without a failed test (it could not be
// imported, or a hook failed) counts as one failure; an unhandled error counts as one failure.
import { writeFileSync } from 'node:fs'

export default class SummaryReporter {
  onTestRunEnd(testModules, unhandledErrors) {
    const target = process.env.LABWIRE_VITEST_SUMMARY
    if (!target) return
    let passed = 0
    let failed = 0
    let skipped = 0
    for (const module of testModules) {
      let moduleFailed = 0
      for (const test of module.children.allTests()) {
        const state = test.result().state
        if (state === 'passed') passed++
        else if (state === 'failed') moduleFailed++
        else skipped++
      }
      if (moduleFailed === 0 && module.state() === 'failed') moduleFailed = 1
      failed += moduleFailed
    }
    failed += unhandledErrors.length
    writeFileSync(target, `vitest: ${passed} passed, ${failed} failed, ${skipped} skipped\n`)
  }
}
