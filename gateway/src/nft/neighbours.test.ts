import { describe, expect, it } from 'vitest';
import { neighbourCommands } from './neighbours.js';

describe('neighbourCommands', () => {
  const kid = { ipv4: '10.20.0.10', mac: '52:54:00:00:00:0a', port: 'g-kid' };
  const work = { ipv4: '10.20.0.11', mac: '52:54:00:00:00:0B' };

  it('pins every guest permanently, and each guest with a port to its port', () => {
    expect(neighbourCommands('lan0', [kid, work], { neighbours: [], fdb: [] })).toEqual({
      ip: [
        'neigh replace 10.20.0.10 lladdr 52:54:00:00:00:0a dev lan0 nud permanent',
        'neigh replace 10.20.0.11 lladdr 52:54:00:00:00:0b dev lan0 nud permanent',
      ],
      bridge: ['fdb replace 52:54:00:00:00:0a dev g-kid master static sticky'],
    });
  });

  it("removes permanent entries that are no longer a guest's, and leaves learned ones alone", () => {
    const out = neighbourCommands('lan0', [kid], {
      neighbours: [
        { dst: '10.20.0.10', lladdr: '52:54:00:00:00:0a', state: ['PERMANENT'] },
        { dst: '10.20.0.11', lladdr: '52:54:00:00:00:0b', state: ['PERMANENT'] },
        { dst: '10.20.0.12', lladdr: '52:54:00:00:00:0c', state: ['PERMANENT'] },
        { dst: '10.20.0.230', lladdr: '02:00:00:00:00:01', state: ['REACHABLE'] },
      ],
      fdb: [
        { mac: '52:54:00:00:00:0a', ifname: 'g-old', state: 'static', master: 'lan0' },
        { mac: '52:54:00:00:00:0b', ifname: 'g-work', state: 'static', master: 'lan0', flags: ['sticky'] },
        { mac: '02:00:00:00:00:01', ifname: 'g-kid', master: 'lan0' },
        { mac: 'aa:bb:cc:00:00:01', ifname: 'lan0', state: 'permanent', master: 'lan0' },
      ],
    });
    // kid's entry is right already: nothing to do for it
    expect(out.ip).toEqual(['neigh del 10.20.0.11 dev lan0', 'neigh del 10.20.0.12 dev lan0']);
    expect(out.bridge).toEqual([
      'fdb del 52:54:00:00:00:0a dev g-old master',
      'fdb del 52:54:00:00:00:0b dev g-work master',
      'fdb replace 52:54:00:00:00:0a dev g-kid master static sticky',
    ]);
  });
});
