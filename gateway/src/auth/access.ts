/**
 * Who may do what through the API. Pure: the HTTP layer asks `decide` for each request
 * and applies the answer.
 *
 * - `admin`: everything.
 * - `viewer`: every read (GET, HEAD), nothing else.
 * - `parent`: the VMs of the people they look after (a VM whose `owner` is one of
 *   them): those VMs' state, look-ups, rules, pause, time budget, schedules, access
 *   requests and alerts; the profiles (to explain them); nothing else.
 */

/** The roles, from most to least powerful. */
export const ROLES = ['admin', 'parent', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** Who makes a request, once authenticated. */
export interface Principal {
  /** How: a login session, an API token, the config's legacy token, a scrape address. */
  readonly via: 'session' | 'token' | 'config-token' | 'scrape';
  /** The user's or the token's name. */
  readonly name: string;
  readonly role: Role;
  /** For a parent: the people (VM owners) they look after. */
  readonly people: readonly string[];
}

/** What the audit log records as the actor: `user:<name>`, `token:<name>`, `config-token`. */
export function actorOf(p: Principal): string {
  switch (p.via) {
    case 'session':
      return `user:${p.name}`;
    case 'token':
      return `token:${p.name}`;
    case 'config-token':
      return 'config-token';
    case 'scrape':
      return `scrape:${p.name}`;
  }
}

/**
 * What must hold before a parent's request runs, checked by the HTTP layer with the
 * data it has: the VM named by the route, the access request, the schedule's VMs; or
 * a list to cut down to the parent's VMs afterwards.
 */
export type Scope =
  | { readonly kind: 'vm' }
  | { readonly kind: 'request' }
  | { readonly kind: 'schedule'; readonly existing: boolean; readonly body: boolean }
  | { readonly kind: 'filter'; readonly list: 'vms' | 'schedules' | 'requests' | 'alerts' }
  | { readonly kind: 'none' };

export type Decision =
  { readonly allow: true; readonly scope: Scope } | { readonly allow: false; readonly reason: string };

const NONE: Scope = { kind: 'none' };
const VM: Scope = { kind: 'vm' };

/** A parent's routes (under the API prefix, Fastify's route pattern) and their scope. */
const PARENT: Readonly<Record<string, Scope>> = {
  'GET /health': NONE,
  'GET /vms': { kind: 'filter', list: 'vms' },
  'GET /vms/:name': VM,
  'GET /vms/:name/state': VM,
  'GET /vms/:name/budget': VM,
  'POST /vms/:name/budget/grant': VM,
  'POST /vms/:name/pause': VM,
  'DELETE /vms/:name/pause': VM,
  'GET /vms/:name/queries': VM,
  'GET /vms/:name/dns-check': VM,
  'GET /vms/:name/rules': VM,
  'GET /vms/:name/rules/:id': VM,
  'POST /vms/:name/rules': VM,
  'DELETE /vms/:name/rules/:id': VM,
  'GET /profiles': NONE,
  'GET /profiles/:name': NONE,
  'GET /schedules': { kind: 'filter', list: 'schedules' },
  'GET /schedules/:name': { kind: 'schedule', existing: true, body: false },
  'POST /schedules': { kind: 'schedule', existing: false, body: true },
  'PUT /schedules/:name': { kind: 'schedule', existing: true, body: true },
  'DELETE /schedules/:name': { kind: 'schedule', existing: true, body: false },
  'GET /access-requests': { kind: 'filter', list: 'requests' },
  'GET /access-requests/:id': { kind: 'request' },
  'POST /access-requests/:id/approve': { kind: 'request' },
  'POST /access-requests/:id/deny': { kind: 'request' },
  'GET /alerts': { kind: 'filter', list: 'alerts' },
  // the live feed: the stream itself leaves out other VMs (`liveRoutes`' scope)
  'GET /events': NONE,
};

const READ = new Set(['GET', 'HEAD']);

/**
 * May `principal` call `method route`? `route` is the route's pattern under the API
 * prefix (`/vms/:name/pause`), or a path outside it (`/metrics`).
 */
export function decide(principal: Principal, method: string, route: string): Decision {
  if (principal.role === 'admin') return { allow: true, scope: NONE };
  // a backup holds every secret (password hashes, token hashes, keys): admins only
  if (route === '/backup' || route.startsWith('/backup/'))
    return { allow: false, reason: 'backups and restores are for admins' };
  // a capture holds every VM's traffic, whatever the VM: admins only, reads too
  if (route === '/captures' || route.startsWith('/captures/'))
    return { allow: false, reason: 'packet captures are for admins' };
  if (principal.role === 'viewer') {
    return READ.has(method)
      ? { allow: true, scope: NONE }
      : { allow: false, reason: 'the viewer role reads only' };
  }
  const scope = PARENT[`${method === 'HEAD' ? 'GET' : method} ${route}`];
  return scope
    ? { allow: true, scope }
    : { allow: false, reason: 'a parent manages the VMs of the people they look after, nothing else' };
}

/** The names of the VMs a parent looks after: those whose owner is one of their people. */
export function vmsOf(
  principal: Principal,
  vms: ReadonlyArray<{ readonly name: string; readonly owner?: string | undefined }>,
): Set<string> {
  const people = new Set(principal.people);
  return new Set(vms.filter((v) => v.owner !== undefined && people.has(v.owner)).map((v) => v.name));
}

/** Whether every VM of a schedule is one of `mine` (and it has at least one). */
export function scheduleIsMine(vms: readonly string[], mine: ReadonlySet<string>): boolean {
  return vms.length > 0 && vms.every((v) => mine.has(v));
}

/** A list answer cut down to a parent's VMs. */
export function filterList(
  list: 'vms' | 'schedules' | 'requests' | 'alerts',
  items: readonly unknown[],
  mine: ReadonlySet<string>,
): unknown[] {
  return items.filter((item) => {
    const o = item as { name?: string; vm?: string | null; vms?: string[] };
    switch (list) {
      case 'vms':
        return o.name !== undefined && mine.has(o.name);
      case 'schedules':
        return scheduleIsMine(o.vms ?? [], mine);
      case 'requests':
      case 'alerts':
        return typeof o.vm === 'string' && mine.has(o.vm);
    }
  });
}
