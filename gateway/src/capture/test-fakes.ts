import { writeFileSync } from 'node:fs';
import { FakeChild, FakeSpawner } from '../process/test-fakes.js';
import { PCAP_HEADER_BYTES } from './pcap.js';

/** Fakes for the capture tests and its users' tests. Not used by the service. */

/** A pcap (little-endian, microseconds, Ethernet) with packets of these lengths. */
export function makePcap(lengths: readonly number[]): Buffer {
  const header = Buffer.alloc(PCAP_HEADER_BYTES);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(1, 20);
  const records = lengths.map((n, i) => {
    const r = Buffer.alloc(16 + n, i + 1);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(0, 4);
    r.writeUInt32LE(n, 8);
    r.writeUInt32LE(n, 12);
    return r;
  });
  return Buffer.concat([header, ...records]);
}

/** tcpdump as the service sees it: listens, writes `packets` into its -w file, exits on SIGTERM. */
export class FakeTcpdump extends FakeSpawner {
  packets: number[] = [60, 60, 60];
  fail: string | undefined;
  constructor() {
    super();
    this.next = () => {
      const child = new FakeChild(this.firstPid + this.children.length);
      // tcpdump's counts on its way out, then the end of its output
      child.on('exit', () => {
        child.stderr.end(`${this.packets.length} packets captured\n0 packets dropped by kernel\n`);
      });
      const args = this.calls.at(-1)!.args;
      const file = args[args.indexOf('-w') + 1]!;
      setTimeout(() => {
        if (this.fail) {
          child.stderr.write(`tcpdump: ${this.fail}\n`);
          setTimeout(() => child.exit(1), 10);
          return;
        }
        writeFileSync(file, makePcap(this.packets));
        child.stderr.write(`tcpdump: listening on ${args[1]}, link-type EN10MB (Ethernet)\n`);
      }, 5);
      return child;
    };
  }
}
