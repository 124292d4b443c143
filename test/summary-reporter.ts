import { appendFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `<project>: N passed, N failed, N skipped`, that any CI
 * log reader understands, after vitest's own summary.
 *
 * With PORTCULLIS_TEST_TIMES set to a file, it also appends one line per test file,
 * `<ms>\t<project>\t<file>` (the file's tests and hooks), so that a run of several
 * vitest invocations can name its slowest files at the end (.ci/run does).
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const projects = new Set<string>();
    for (const m of testModules) {
      projects.add(m.project.name);
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
    }
    const times = process.env.PORTCULLIS_TEST_TIMES;
    if (times) {
      const lines = testModules.map(
        (m) => `${Math.round(m.diagnostic().duration)}\t${m.project.name}\t${m.relativeModuleId}\n`,
      );
      appendFileSync(times, lines.join(''));
    }
    const name = [...projects].join('+') || 'tests';
    process.stdout.write(`\n${name}: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
