import { execFile } from 'node:child_process';

/** Removes conntrack entries, so a changed MAC/IP binding cannot ride an old flow. */
export interface Conntrack {
  /** Delete every entry whose original source or destination is `address`. */
  purge(address: string): Promise<void>;
}

/** conntrack(8) from Debian's conntrack package. A missing entry is not an error. */
export class ConntrackCli implements Conntrack {
  async purge(address: string): Promise<void> {
    const family = address.includes(':') ? 'ipv6' : 'ipv4';
    for (const dir of ['-s', '-d']) {
      await new Promise<void>((resolve) => {
        execFile('conntrack', ['-D', '-f', family, dir, address], () => resolve());
      });
    }
  }
}
