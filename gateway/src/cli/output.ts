/** Where a command writes: stdout and stderr, or a test's buffers. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

/** The process's own streams. */
export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** One column of a table: its heading and how to show a row's cell. */
export type Column<T> = readonly [heading: string, cell: (row: T) => string | number | boolean | undefined];

/** Rows as a plain-text table with a heading line; `(none)` for no rows. */
export function table<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  if (rows.length === 0) return '(none)\n';
  const cells = rows.map((r) => columns.map(([, cell]) => String(cell(r) ?? '-').replace(/\s+/g, ' ')));
  const widths = columns.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => (i === values.length - 1 ? v : v.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(columns.map(([h]) => h)), ...cells.map(line)].join('\n')}\n`;
}

/** Fields as `key: value` lines, aligned; absent values left out. */
export function fields(entries: readonly (readonly [string, unknown])[]): string {
  const present = entries.filter(([, v]) => v !== undefined && v !== null && v !== '');
  const width = Math.max(0, ...present.map(([k]) => k.length));
  return (
    present
      .map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join('\n') + '\n'
  );
}

/** JSON for machines: indented, one trailing newline. */
export function asJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
