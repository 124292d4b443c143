import { Type } from 'typebox';
import { describe, expect, it } from 'vitest';
import './policy/formats.js';
import { schemaIssues } from './schema.js';

const Target = Type.Union([
  Type.Object({ cidr: Type.String() }, { additionalProperties: false }),
  Type.Object({ vm: Type.String() }, { additionalProperties: false }),
]);
const Rule = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z]+$', description: 'lower-case letters' }),
    action: Type.Union([Type.Literal('accept'), Type.Literal('drop')]),
    to: Target,
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    expires: Type.Optional(Type.String({ format: 'date-time' })),
  },
  { additionalProperties: false },
);
const Rules = Type.Object({ rules: Type.Array(Rule) }, { additionalProperties: false });
const good = { name: 'web', action: 'accept', to: { cidr: '192.0.2.0/24' } };

describe('schemaIssues', () => {
  it('finds nothing wrong with a valid value', () => {
    expect(schemaIssues(Rule, good)).toEqual([]);
    expect(schemaIssues(Rule, { ...good, to: { vm: 'kid' }, port: 443 })).toEqual([]);
  });

  it('names a missing property by its own path', () => {
    const { name: _, ...nameless } = good;
    expect(schemaIssues(Rule, nameless)).toEqual([{ path: '/name', message: 'Expected required property' }]);
  });

  it('names an unknown property once, by its own path', () => {
    expect(schemaIssues(Rule, { ...good, colour: 'red' })).toEqual([
      { path: '/colour', message: 'Unexpected property' },
    ]);
  });

  it('explains a pattern by the schema description', () => {
    expect(schemaIssues(Rule, { ...good, name: 'Web' })).toEqual([
      { path: '/name', message: '"Web" is not valid: lower-case letters' },
    ]);
  });

  it('narrows a union of objects to the variant the value meant', () => {
    expect(schemaIssues(Rule, { ...good, to: { cidr: 5 } })).toEqual([
      { path: '/to/cidr', message: 'Expected string' },
    ]);
  });

  it('lists the variants when no variant is meant', () => {
    expect(schemaIssues(Rule, { ...good, to: { colour: 'red' } })).toEqual([
      { path: '/to', message: 'expected {cidr} or {vm}' },
    ]);
    expect(schemaIssues(Rule, { ...good, action: 'explode' })).toEqual([
      { path: '/action', message: 'expected "accept" or "drop"' },
    ]);
  });

  it('tells each list item its own problems, even past eight of them', () => {
    const rules = Array.from({ length: 12 }, (_, i) => ({ ...good, to: { cidr: i } }));
    const issues = schemaIssues(Rules, { rules });
    expect(issues.map((i) => i.path)).toEqual(rules.map((_, i) => `/rules/${i}/to/cidr`));
  });

  it('says what a bound or format wanted, in the words of TypeBox 0.34', () => {
    expect(schemaIssues(Rule, { ...good, port: 0 })).toEqual([
      { path: '/port', message: 'Expected integer to be greater or equal to 1' },
    ]);
    expect(schemaIssues(Rule, { ...good, port: 1.5 })).toEqual([
      { path: '/port', message: 'Expected integer' },
    ]);
    expect(schemaIssues(Type.Object({ s: Type.String({ minLength: 1 }) }), { s: '' })).toEqual([
      { path: '/s', message: 'Expected string length greater or equal to 1' },
    ]);
    expect(schemaIssues(Rule, { ...good, expires: 'tomorrow' })).toEqual([
      { path: '/expires', message: "Expected string to match 'date-time' format" },
    ]);
  });

  it('stops at the limit', () => {
    const rules = Array.from({ length: 12 }, () => ({ ...good, port: 0 }));
    expect(schemaIssues(Rules, { rules }, 3)).toHaveLength(3);
  });

  it('takes ISO 8601 date-times, seconds optional, and refuses others', () => {
    expect(schemaIssues(Rule, { ...good, expires: '2026-12-02T22:00Z' })).toEqual([]);
    expect(schemaIssues(Rule, { ...good, expires: '2026-12-02T22:00:30.5+01:00' })).toEqual([]);
    expect(schemaIssues(Rule, { ...good, expires: '2026-13-02T22:00Z' }).map((i) => i.path)).toEqual([
      '/expires',
    ]);
    expect(schemaIssues(Rule, { ...good, expires: 'tomorrow' }).map((i) => i.path)).toEqual(['/expires']);
  });

  it('reports a value of the wrong type at the root', () => {
    expect(schemaIssues(Rule, null)).toEqual([{ path: '', message: 'Expected object' }]);
  });
});
