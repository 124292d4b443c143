import type { Command } from 'commander';
import type { Schedule, Weekday, Window } from '../policy/model.js';
import {
  apiCommand,
  clientFor,
  collect,
  group,
  list,
  usage,
  type ApiCommandOptions,
  type CliContext,
} from './api-commands.js';
import { asJson, fields, table } from './output.js';

const DAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const DAY_SETS: Record<string, readonly Weekday[]> = {
  daily: DAYS,
  weekdays: DAYS.slice(0, 5),
  weekend: DAYS.slice(5),
};

/**
 * A window from `DAYS START-END`: days as `mon,wed`, ranges `mon-fri`, or `daily`,
 * `weekdays`, `weekend`; times as HH:MM (an end before the start means the next day).
 * @throws REQUEST_INVALID naming --window.
 */
export function parseWindow(spec: string): Window {
  const m = /^\s*(\S+)\s+(\d{2}:\d{2})-(\d{2}:\d{2})\s*$/.exec(spec);
  if (!m)
    throw usage(`"${spec}" is not a window; write DAYS START-END, e.g. "mon-fri 21:00-07:00"`, '--window');
  const days = new Set<Weekday>();
  for (const part of list(m[1]!)) {
    const named = DAY_SETS[part];
    const range = /^([a-z]{3})-([a-z]{3})$/.exec(part);
    if (named) named.forEach((d) => days.add(d));
    else if (range && DAYS.includes(range[1] as Weekday) && DAYS.includes(range[2] as Weekday)) {
      const from = DAYS.indexOf(range[1] as Weekday);
      const to = DAYS.indexOf(range[2] as Weekday);
      for (let i = from; ; i = (i + 1) % 7) {
        days.add(DAYS[i]!);
        if (i === to) break;
      }
    } else if (DAYS.includes(part as Weekday)) days.add(part as Weekday);
    else
      throw usage(
        `"${part}" is not a day; use mon … sun, a range like mon-fri, daily, weekdays or weekend`,
        '--window',
      );
  }
  return { days: DAYS.filter((d) => days.has(d)), start: m[2]!, end: m[3]! };
}

const describeWindow = (w: Window): string => `${w.days.join(',')} ${w.start}-${w.end}`;

/** `portcullis schedule list|show|add|rm`. */
export function registerScheduleCommands(program: Command, ctx: CliContext): void {
  const schedule = group(program, 'schedule', 'time windows that switch VMs to deny or allowlist-only');
  const path = (name: string): string => `/schedules/${encodeURIComponent(name)}`;

  apiCommand(schedule, 'list', 'list the schedules').action(async (opts: ApiCommandOptions) => {
    const schedules = await clientFor(opts, ctx).get<Schedule[]>('/schedules');
    ctx.io.out(
      opts.json
        ? asJson(schedules)
        : table(schedules, [
            ['NAME', (s) => s.name],
            ['VMS', (s) => s.vms.join(',')],
            ['MODE', (s) => s.mode],
            ['TIMEZONE', (s) => s.timezone],
            ['WINDOWS', (s) => s.windows.map(describeWindow).join('; ')],
            ['ENABLED', (s) => s.enabled ?? true],
          ]),
    );
  });

  apiCommand(schedule, 'show <name>', 'show a schedule').action(
    async (name: string, opts: ApiCommandOptions) => {
      const s = await clientFor(opts, ctx).get<Schedule>(path(name));
      ctx.io.out(
        opts.json
          ? asJson(s)
          : fields([
              ['name', s.name],
              ['vms', s.vms.join(', ')],
              ['mode', s.mode],
              ['timezone', s.timezone],
              ['windows', s.windows.map(describeWindow).join('; ')],
              ['enabled', s.enabled ?? true],
            ]),
      );
    },
  );

  apiCommand(
    schedule,
    'add <name>',
    'add a schedule (example: schedule add bedtime --vms kid --mode deny --window "daily 21:00-07:00")',
    true,
  )
    .requiredOption('--vms <names>', 'VMs it applies to, comma-separated')
    .requiredOption('--mode <mode>', 'deny or allowlist-only while a window is open')
    .requiredOption('--window <spec>', 'DAYS START-END, e.g. "mon-fri 21:00-07:00" (repeatable)', collect)
    .option('--timezone <zone>', 'IANA time zone of the times', 'UTC')
    .option('--disabled', 'add it switched off')
    .action(
      async (
        name: string,
        opts: ApiCommandOptions & {
          vms: string;
          mode: string;
          window: string[];
          timezone: string;
          disabled?: boolean;
        },
      ) => {
        const body: Schedule = {
          name,
          vms: list(opts.vms),
          mode: opts.mode as Schedule['mode'],
          timezone: opts.timezone,
          windows: opts.window.map(parseWindow),
        };
        if (opts.disabled) body.enabled = false;
        const added = await clientFor(opts, ctx).post<Schedule>('/schedules', body);
        ctx.io.out(opts.json ? asJson(added) : `added schedule ${added.name}\n`);
      },
    );

  apiCommand(schedule, 'rm <name>', 'remove a schedule', true).action(
    async (name: string, opts: ApiCommandOptions) => {
      await clientFor(opts, ctx).delete(path(name));
      ctx.io.out(opts.json ? asJson({ removed: name }) : `removed schedule ${name}\n`);
    },
  );
}
