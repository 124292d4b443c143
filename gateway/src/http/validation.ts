import type { TSchema, TUnion } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';
import { PortcullisError } from '../errors.js';

/**
 * Request validation with TypeBox, the engine validate.ts uses, so the API and the
 * policy file accept exactly the same documents. Bodies are taken as sent (no type
 * coercion, no defaults, unknown properties refused); query strings and path
 * parameters are converted to the schema's types first (`?limit=5` → 5).
 *
 * A failure is a REQUEST_INVALID PortcullisError whose `path` names the field, prefixed
 * by the part of the request: `/body/mac`, `/query/limit`, `/params/name`.
 */
export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const compiled = compile(schema);
  const part = httpPart === 'querystring' ? 'query' : (httpPart ?? 'body');
  const convert = part !== 'body';
  return (data: unknown) => {
    const value = convert ? Value.Convert(schema, data ?? {}) : data;
    if (compiled.Check(value)) return { value };
    const first = compiled.Errors(value).First();
    const problem = first ? explain(first) : { path: '', message: 'does not match the schema' };
    const path = `/${part}${problem.path}`;
    const message =
      part === 'body' && problem.path === '' && (value === null || value === undefined)
        ? 'the request needs a JSON body'
        : `${path}: ${problem.message}`;
    return { error: new PortcullisError('REQUEST_INVALID', message, { path }) };
  };
};

/** Compiled checks, shared by every app built from the same schema objects (tests build many). */
const compiledChecks = new WeakMap<TSchema, TypeCheck<TSchema>>();

function compile(schema: TSchema): TypeCheck<TSchema> {
  let check = compiledChecks.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiledChecks.set(schema, check);
  }
  return check;
}

/** A readable account of one validation error; unions are narrowed to the variant meant. */
export function explain(e: ValueError): { path: string; message: string } {
  if (e.type === ValueErrorType.Union) {
    const variants = (e.schema as TUnion).anyOf;
    const value = e.value as unknown;
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value);
      const meant = variants.findIndex(
        (v) =>
          v.type === 'object' &&
          keys.every((k) => k in (v.properties as object)) &&
          ((v.required as string[] | undefined) ?? []).every((k) => keys.includes(k)),
      );
      const inner = meant >= 0 ? e.errors[meant]?.First() : undefined;
      if (inner) return explain(inner);
    }
    return { path: e.path, message: `expected ${variants.map(describe).join(' or ')}` };
  }
  if (e.type === ValueErrorType.StringPattern) {
    const { description, pattern } = e.schema as { description?: unknown; pattern?: unknown };
    const hint = typeof description === 'string' ? description : `pattern ${String(pattern)}`;
    return { path: e.path, message: `"${String(e.value)}" is not valid: ${hint}` };
  }
  return { path: e.path, message: e.message };
}

function describe(s: TSchema): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.type === 'object' && s.properties) return `{${Object.keys(s.properties as object).join(', ')}}`;
  if (typeof s.type === 'string') return s.type;
  return 'a value';
}
