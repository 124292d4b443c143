import { describe, expect, it } from 'vitest';
import { QueryLog, type QueryLogEntry } from './query-log.js';

const makeEntry = (overrides: Partial<QueryLogEntry> = {}): QueryLogEntry => ({
  time: 0,
  client: 'kid-vm',
  name: 'example.com',
  type: 'A',
  action: 'allow',
  answers: [],
  cached: false,
  ...overrides,
});

describe('QueryLog', () => {
  it('keeps the newest entries per client, newest first', () => {
    const log = new QueryLog(3);
    for (let i = 0; i < 5; i++) log.add(makeEntry({ time: i }));
    log.add(makeEntry({ client: 'work-vm', time: 99 }));
    expect(log.get('kid-vm').map((e) => e.time)).toEqual([4, 3, 2]);
    expect(log.get('kid-vm', { limit: 1 }).map((e) => e.time)).toEqual([4]);
    expect(log.get('work-vm')).toHaveLength(1);
    expect(log.get('nobody')).toEqual([]);
  });

  it('bounds the clients it tracks', () => {
    const log = new QueryLog(2, 2);
    for (const c of ['a', 'b', 'c']) log.add(makeEntry({ client: c }));
    expect(log.get('a')).toEqual([]);
    expect(log.get('c')).toHaveLength(1);
  });

  it('keeps nothing when the size is 0', () => {
    const log = new QueryLog(0);
    log.add(makeEntry());
    expect(log.get('kid-vm')).toEqual([]);
  });
});
