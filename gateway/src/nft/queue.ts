import { execFile } from 'node:child_process';
import { PortcullisError } from '../errors.js';
import type { NftBackend } from './backend.js';
import { MARK, NFQ_REPEAT_MARK } from './marks.js';
import type { QueueSettings } from './types.js';

/** How the kernel hands packets to Suricata. */
export type QueueKind = QueueSettings['kind'];

/**
 * Find out whether this kernel has the nft `queue` expression: a dry-run transaction
 * with a queue rule (the kernel checks it, then the transaction is aborted).
 */
export async function detectQueueKind(nft: NftBackend): Promise<QueueKind> {
  const table = { family: 'inet' as const, name: 'portcullis_probe' };
  try {
    await nft.run(
      [
        { add: { table } },
        { add: { chain: { family: 'inet', table: table.name, name: 'c' } } },
        {
          add: {
            rule: {
              family: 'inet',
              table: table.name,
              chain: 'c',
              expr: [{ queue: { num: 0, flags: 'bypass' } }],
            },
          },
        },
      ],
      { dryRun: true },
    );
    return 'nft';
  } catch {
    return 'xt';
  }
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => {
      if (err)
        reject(
          new PortcullisError(
            'NFT_APPLY_FAILED',
            `${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`,
          ),
        );
      else resolve(stdout);
    });
  });
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * The xtables side of the IPS when the kernel lacks nft `queue`: Portcullis' own chains
 * in iptables' mangle and filter tables (iptables-nft, i.e. xtables inside nf_tables),
 * replaced whole with iptables-restore. The inet portcullis table marks what to queue;
 * these rules restore and save Suricata's bypass bit and queue by the mark.
 */
export async function installXtQueue(queue: number): Promise<void> {
  const B = hex(MARK.bypass);
  const R = hex(NFQ_REPEAT_MARK);
  const RB = hex(NFQ_REPEAT_MARK | MARK.bypass);
  const Q = hex(MARK.queueClosed | MARK.queueOpen);
  const rules = [
    '*mangle',
    ':PORTCULLIS-PRE - [0:0]',
    `-A PORTCULLIS-PRE -j CONNMARK --restore-mark --nfmask ${B} --ctmask ${B}`,
    'COMMIT',
    '*filter',
    ':PORTCULLIS-FWD - [0:0]',
    `-A PORTCULLIS-FWD -m mark --mark ${RB}/${RB} -j CONNMARK --save-mark --nfmask ${B} --ctmask ${B}`,
    `-A PORTCULLIS-FWD -m mark --mark ${R}/${R} -j ACCEPT`,
    `-A PORTCULLIS-FWD -m mark --mark ${B}/${B} -j ACCEPT`,
    `-A PORTCULLIS-FWD -m mark --mark ${hex(MARK.queueClosed)}/${Q} -j NFQUEUE --queue-num ${queue}`,
    `-A PORTCULLIS-FWD -m mark --mark ${hex(MARK.queueOpen)}/${Q} -j NFQUEUE --queue-num ${queue} --queue-bypass`,
    'COMMIT',
    '',
  ].join('\n');
  await new Promise<void>((resolve, reject) => {
    const child = execFile('iptables-restore', ['--noflush'], (err, _out, stderr) =>
      err
        ? reject(new PortcullisError('NFT_APPLY_FAILED', `iptables-restore: ${stderr.trim() || err.message}`))
        : resolve(),
    );
    child.stdin?.end(rules);
  });
  for (const [table, chain, target] of [
    ['mangle', 'PREROUTING', 'PORTCULLIS-PRE'],
    ['filter', 'FORWARD', 'PORTCULLIS-FWD'],
  ] as const) {
    const present = await run('iptables', ['-t', table, '-C', chain, '-j', target]).then(
      () => true,
      () => false,
    );
    if (!present) await run('iptables', ['-t', table, '-I', chain, '1', '-j', target]);
  }
}
