/**
 * Which names a request to the management listener may carry in its Host header, and
 * whether its Origin is this site. Pure.
 *
 * DNS rebinding makes a browser send a request for the attacker's name to this
 * address: its Host header names the attacker's domain, so only configured names and
 * addresses are served (others get 421). A cross-site page can make a browser send a
 * request here too: its Origin is another site (403).
 */
export interface HostPolicy {
  /** Lower-case host names and IP addresses (without port) that are this listener. */
  readonly hosts: ReadonlySet<string>;
}

/** Loopback names: a local forward (the lab's, an SSH tunnel) arrives with these. */
const LOOPBACK = ['127.0.0.1', '::1', 'localhost'];

/**
 * The names the management listener answers to: its listen address (unless a
 * wildcard), the configured names, and loopback.
 */
export function hostPolicy(listen: string, names: readonly string[] = []): HostPolicy {
  const hosts = new Set<string>(LOOPBACK);
  if (listen !== '0.0.0.0' && listen !== '::') hosts.add(listen.toLowerCase());
  for (const n of names) hosts.add(n.toLowerCase().replace(/^\[|\]$/g, ''));
  return { hosts };
}

/** The host part of a Host header or URL host (`[::1]:8443` → `::1`), lower case. */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  // an unbracketed IPv6 address has several colons and no port
  const name = colon > 0 && h.indexOf(':') === colon ? h.slice(0, colon) : h;
  return name.replace(/\.$/, '');
}

/** Whether a Host header names this listener. */
export function hostAllowed(policy: HostPolicy, host: string | undefined): boolean {
  if (host === undefined || host === '') return false;
  const name = hostName(host);
  return policy.hosts.has(name);
}

/**
 * Whether the browser says the request comes from another site: an Origin (other
 * than this request's own scheme and host) or `Sec-Fetch-Site: cross-site|same-site`.
 * No Origin at all (curl, a top-level navigation) is not cross-site.
 */
export function crossSite(
  request: { readonly host: string | undefined; readonly secure: boolean },
  origin: string | undefined,
  fetchSite: string | undefined,
): boolean {
  if (fetchSite === 'cross-site' || fetchSite === 'same-site') return true;
  if (origin === undefined) return false;
  if (origin === 'null') return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return true;
  }
  const scheme = request.secure ? 'https:' : 'http:';
  return url.protocol !== scheme || url.host !== (request.host ?? '').toLowerCase();
}
