import type { TSchema } from 'typebox';
import { Compile, type Validator } from 'typebox/compile';
import type { TLocalizedValidationError } from 'typebox/error';
import { Settings } from 'typebox/system';
import type { Issue } from './errors.js';

/**
 * Checking values against TypeBox schemas, with problems told the way this project
 * tells them: one `{path, message}` per problem, the path naming the field itself (a
 * missing or unknown property is named, not its parent object), a union narrowed to
 * the variant the value meant, a pattern explained by the schema's description. The
 * API, the policy file, the config and the lab topology all report through here.
 */

/**
 * Errors TypeBox gathers for one invalid value (its default is 8, too few to see
 * every problem of a policy document). Only invalid values pay for it.
 */
const MAX_ERRORS = 512;

/** The JSON Schema keywords the explanations look at. */
interface SchemaShape {
  readonly type?: unknown;
  readonly const?: unknown;
  readonly properties?: Readonly<Record<string, unknown>>;
  readonly required?: readonly string[];
  readonly description?: unknown;
  readonly anyOf?: readonly SchemaShape[];
  readonly oneOf?: readonly SchemaShape[];
}
Settings.Set({ maxErrors: MAX_ERRORS });

/** Compiled checks, shared by everything that checks against the same schema object. */
const validators = new WeakMap<TSchema, Validator>();

/** The compiled check of a schema (compiled once per schema object). */
export function compiled(schema: TSchema): Validator {
  let validator = validators.get(schema);
  if (!validator) {
    validator = Compile(schema);
    validators.set(schema, validator);
  }
  return validator;
}

/**
 * Every problem of `value` against `schema`, at most `limit` (default 50), in the
 * order the schema meets them; empty when the value passes.
 */
export function schemaIssues(schema: TSchema, value: unknown, limit = 50): Issue[] {
  const validator = compiled(schema);
  if (validator.Check(value)) return [];
  return explainErrors(schema, value, validator.Errors(value)).slice(0, limit);
}

/**
 * TypeBox's errors for `value` as issues: a union's errors folded into one issue (or
 * into the errors of the variant meant), the echo of an unknown property under a
 * closed object dropped, required and unknown properties named by their own path.
 */
export function explainErrors(
  schema: TSchema,
  value: unknown,
  errors: readonly TLocalizedValidationError[],
): Issue[] {
  // each union error owns the errors of its variants that precede it; inner unions first
  const owner = new Map<TLocalizedValidationError, TLocalizedValidationError>();
  errors.forEach((e, i) => {
    if (e.keyword !== 'anyOf' && e.keyword !== 'oneOf') return;
    const prefix = `${e.schemaPath}/${e.keyword}/`;
    for (const inner of errors.slice(0, i)) {
      if (owner.has(inner) || !inner.schemaPath.startsWith(prefix)) continue;
      if (inner.instancePath === e.instancePath || inner.instancePath.startsWith(`${e.instancePath}/`))
        owner.set(inner, e);
    }
  });
  const explain = (list: readonly TLocalizedValidationError[]): Issue[] =>
    list.flatMap((e) => issuesOf(e, schema, value, errors, owner));
  return explain(errors.filter((e) => !owner.has(e)));
}

function issuesOf(
  e: TLocalizedValidationError,
  root: TSchema,
  value: unknown,
  all: readonly TLocalizedValidationError[],
  owner: ReadonlyMap<TLocalizedValidationError, TLocalizedValidationError>,
): Issue[] {
  const path = e.instancePath;
  switch (e.keyword) {
    case 'anyOf':
    case 'oneOf': {
      const variants = (resolve(root, e.schemaPath) as SchemaShape | undefined)?.[e.keyword] ?? [];
      const at = resolve(value, `#${path}`);
      const meant = meantVariant(variants, at);
      if (meant >= 0) {
        const prefix = `${e.schemaPath}/${e.keyword}/${meant}`;
        const inner = all.filter(
          (x) => owner.get(x) === e && (x.schemaPath === prefix || x.schemaPath.startsWith(`${prefix}/`)),
        );
        const issues = inner.flatMap((x) => issuesOf(x, root, value, all, owner));
        if (issues.length > 0) return issues;
      }
      return [{ path, message: `expected ${variants.map(describe).join(' or ')}` }];
    }
    case 'required':
      return e.params.requiredProperties.map((name) => ({
        path: `${path}/${escape(name)}`,
        message: 'Expected required property',
      }));
    case 'additionalProperties':
      return e.params.additionalProperties.map((name) => ({
        path: `${path}/${escape(name)}`,
        message: 'Unexpected property',
      }));
    case 'boolean':
      // `additionalProperties: false` reports each unknown property twice; keep the named one
      return e.schemaPath.endsWith('/additionalProperties') ? [] : [{ path, message: e.message }];
    case 'pattern': {
      const description = (resolve(root, e.schemaPath) as SchemaShape | undefined)?.description;
      const hint = typeof description === 'string' ? description : `pattern ${e.params.pattern}`;
      return [{ path, message: `"${String(resolve(value, `#${path}`))}" is not valid: ${hint}` }];
    }
    default:
      return [{ path, message: message(e, resolve(root, e.schemaPath) as SchemaShape | undefined) }];
  }
}

/** The words TypeBox 0.34 used (the dashboard shows them; people and tests know them). */
function message(e: TLocalizedValidationError, schema: SchemaShape | undefined): string {
  const what = schema?.type === 'integer' ? 'integer' : 'number';
  switch (e.keyword) {
    case 'type':
      return `Expected ${String(e.params.type)}`;
    case 'const': {
      const v = e.params.allowedValue;
      return `Expected ${typeof v === 'string' ? `'${v}'` : String(v)}`;
    }
    case 'minLength':
      return `Expected string length greater or equal to ${e.params.limit}`;
    case 'maxLength':
      return `Expected string length less or equal to ${e.params.limit}`;
    case 'minimum':
      return `Expected ${what} to be greater or equal to ${e.params.limit}`;
    case 'maximum':
      return `Expected ${what} to be less or equal to ${e.params.limit}`;
    case 'exclusiveMinimum':
      return `Expected ${what} to be greater than ${e.params.limit}`;
    case 'exclusiveMaximum':
      return `Expected ${what} to be less than ${e.params.limit}`;
    case 'minItems':
      return `Expected array length to be greater or equal to ${e.params.limit}`;
    case 'maxItems':
      return `Expected array length to be less or equal to ${e.params.limit}`;
    case 'uniqueItems':
      return 'Expected array elements to be unique';
    case 'format':
      return `Expected string to match '${e.params.format}' format`;
    default:
      return e.message;
  }
}

/** The variant of a union of objects whose keys the value has (all required, none unknown); -1 if none. */
function meantVariant(variants: readonly SchemaShape[], value: unknown): number {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return -1;
  const keys = Object.keys(value);
  return variants.findIndex(
    (v) =>
      v.type === 'object' &&
      keys.every((k) => k in (v.properties ?? {})) &&
      (v.required ?? []).every((k) => keys.includes(k)),
  );
}

function describe(s: SchemaShape): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'object' && s.properties) return `{${Object.keys(s.properties).join(', ')}}`;
  if (typeof s.type === 'string') return s.type;
  return 'a value';
}

/** What a JSON pointer (`#/properties/to/anyOf/1`, `#/rules/0`) points at; undefined if nothing. */
function resolve(from: unknown, pointer: string): unknown {
  let at = from;
  for (const raw of pointer.replace(/^#/, '').split('/').slice(1)) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string, unknown>)[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return at;
}

function escape(name: string): string {
  return name.replace(/~/g, '~0').replace(/\//g, '~1');
}
