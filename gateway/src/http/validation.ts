import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import type { FastifySchemaCompiler } from 'fastify';
import { PortcullisError } from '../errors.js';
import { compiled, explainErrors } from '../schema.js';

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
  const validator = compiled(schema);
  const part = httpPart === 'querystring' ? 'query' : (httpPart ?? 'body');
  const convert = part !== 'body';
  return (data: unknown) => {
    const value = convert ? Value.Convert(schema, data ?? {}) : data;
    if (validator.Check(value)) return { value };
    const first = explainErrors(schema, value, validator.Errors(value))[0];
    const problem = first ?? { path: '', message: 'does not match the schema' };
    const path = `/${part}${problem.path}`;
    const message =
      part === 'body' && problem.path === '' && (value === null || value === undefined)
        ? 'the request needs a JSON body'
        : `${path}: ${problem.message}`;
    return { error: new PortcullisError('REQUEST_INVALID', message, { path }) };
  };
};
