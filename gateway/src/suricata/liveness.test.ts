import { describe, expect, it } from 'vitest';
import { parseNfQueue, queueStalled, SuricataLiveness, type QueueSample } from './liveness.js';

/** /proc/net/netfilter/nfnetlink_queue: queue, portid, waiting, mode, range, dropped, user dropped, id seq, 1 */
const PROC = `    0  12345     0 2 65531     0     0     4711  1
   13 -4242   812 2 65531    17     0   190210  1
`;

const sample = (waiting: number, queued: number, dropped = 0): QueueSample => ({ waiting, queued, dropped });

describe('parseNfQueue', () => {
  it('reads the queue asked for', () => {
    expect(parseNfQueue(PROC, 13)).toEqual({ waiting: 812, queued: 190210, dropped: 17 });
    expect(parseNfQueue(PROC, 0)).toEqual({ waiting: 0, queued: 4711, dropped: 0 });
  });

  it('is undefined when nobody is bound to the queue', () => {
    expect(parseNfQueue(PROC, 7)).toBeUndefined();
    expect(parseNfQueue('', 0)).toBeUndefined();
  });
});

describe('queueStalled', () => {
  it('is stalled when packets wait and none was taken', () => {
    expect(queueStalled(sample(10, 100), sample(30, 120))).toBe(true); // 20 new, all still waiting
    expect(queueStalled(sample(4096, 5000, 0), sample(4096, 6000, 1000))).toBe(true); // full: new ones dropped
  });

  it('is not stalled while the reader takes packets, or when nothing waits', () => {
    expect(queueStalled(sample(10, 100), sample(10, 120))).toBe(false); // 20 taken
    expect(queueStalled(sample(30, 100), sample(5, 100))).toBe(false); // draining
    expect(queueStalled(sample(0, 100), sample(0, 100))).toBe(false); // idle
    expect(queueStalled(sample(0, 100), sample(3, 103))).toBe(false); // first packets just arrived
  });
});

describe('SuricataLiveness', () => {
  it('fails when the command socket does not answer', async () => {
    const live = new SuricataLiveness({ ping: async () => false });
    expect(await live.check(1)).toBe('the command socket does not answer');
    expect(await new SuricataLiveness({ ping: async () => true }).check(1)).toBeUndefined();
  });

  it('does not count a socket held by a long command (a blocking rule reload) as a hang', async () => {
    let busy: string | undefined = 'reload-rules';
    const live = new SuricataLiveness({ ping: async () => false, busy: () => busy });
    expect(await live.check(1)).toBeUndefined();
    busy = undefined;
    expect(await live.check(1)).toBe('the command socket does not answer');
  });

  it('fails when packets wait in its queue and none was taken since the last check', async () => {
    const texts = [
      '13 1 5 2 65531 0 0 100 1',
      '13 1 5 2 65531 0 0 110 1', // 10 taken
      '13 1 25 2 65531 0 0 130 1', // 20 more, none taken
    ];
    const pids: number[] = [];
    const live = new SuricataLiveness({
      ping: async () => true,
      queue: 13,
      readQueues: async (pid) => {
        pids.push(pid);
        return texts.shift() ?? '';
      },
    });
    expect(await live.check(77)).toBeUndefined(); // first look: nothing to compare
    expect(await live.check(77)).toBeUndefined();
    expect(await live.check(77)).toBe(
      '25 packets wait in NFQUEUE 13 and none was taken since the last check',
    );
    expect(pids).toEqual([77, 77, 77]);
  });

  it('compares samples of the same process only (a restarted Suricata starts afresh)', async () => {
    const texts = ['13 1 5 2 65531 0 0 100 1', '13 1 25 2 65531 0 0 120 1'];
    const live = new SuricataLiveness({
      ping: async () => true,
      queue: 13,
      readQueues: async () => texts.shift()!,
    });
    expect(await live.check(1)).toBeUndefined();
    expect(await live.check(2)).toBeUndefined();
  });
});
