import { readFileSync } from 'node:fs';
import { PortcullisError } from '../errors.js';
import { parseAddressList, type AddressListLimits } from '../policy/address-list.js';

/** Read and parse an address list file. */
export function loadAddressList(file: string, limits?: AddressListLimits): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new PortcullisError(
      'BUNDLE_INVALID',
      `cannot read address list ${file}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return parseAddressList(text, file, limits);
}
