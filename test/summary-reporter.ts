import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `<project>: N passed, N failed, N skipped`, that any CI
 * log reader understands, after vitest's own summary.
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
    const name = [...projects].join('+') || 'tests';
    process.stdout.write(`\n${name}: ${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}
