import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The libvirt XML of a real KVM host (the guests' own networks, the security VM, an
 * example guest) against libvirt's own schemas, with virt-xml-validate (Debian:
 * libvirt-clients and libxml2-utils, installed by appliance/provision.sh).
 */
const HERE = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(HERE)
  .filter((f) => f.endsWith('.xml'))
  .sort();
const scratch = mkdtempSync(join(tmpdir(), 'portcullis-libvirt-'));

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function validate(file: string): { ok: boolean; output: string } {
  const r = spawnSync('virt-xml-validate', [file], { encoding: 'utf8' });
  if (r.error)
    throw new Error(
      `virt-xml-validate cannot run (${r.error.message}): install libvirt-clients and libxml2-utils (appliance/provision.sh does)`,
    );
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

describe('appliance/libvirt XML', () => {
  it('has the networks, the security VM and an example guest', () => {
    expect(files).toEqual(['guest-kid.xml', 'network-guest-kid.xml', 'network-mgmt.xml', 'security-vm.xml']);
  });

  for (const file of files) {
    it(`${file} is valid for libvirt`, () => {
      const r = validate(join(HERE, file));
      expect(r.output).toMatch(/validates/);
      expect(r.ok).toBe(true);
    });
  }

  it('fails a file that breaks the schema (the validator can say no)', () => {
    const broken = join(scratch, 'broken.xml');
    const text = readFileSync(join(HERE, 'network-guest-kid.xml'), 'utf8');
    writeFileSync(broken, text.replace("trustGuestRxFilters='no'", "trustGuestRxFilters='maybe'"));
    expect(validate(broken).ok).toBe(false);
  });

  it("keeps the host out of the guests' receive filters and puts each guest on a network of its own", () => {
    // the elements, not the comments that explain them
    const read = (f: string): string => readFileSync(join(HERE, f), 'utf8').replace(/<!--[\s\S]*?-->/g, '');
    const guest = read('guest-kid.xml');
    const network = read('network-guest-kid.xml');
    const secvm = read('security-vm.xml');
    expect(network).toMatch(/<network trustGuestRxFilters='no'>/);
    expect(network).not.toMatch(/<forward|<ip /);
    expect(guest).toMatch(/trustGuestRxFilters='no'/);
    expect(guest).toMatch(/<source network='portcullis-kid'\/>/);
    expect(guest).toMatch(/<filterref filter='clean-traffic'>/);
    expect(secvm).toMatch(/<source network='portcullis-kid'\/>/);
    // the validator is the one libvirt ships
    expect(execFileSync('virt-xml-validate', ['--version'], { encoding: 'utf8' })).toMatch(/\d+\.\d+/);
  });
});
