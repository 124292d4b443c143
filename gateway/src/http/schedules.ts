import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Schedule } from '../policy/model.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { NameParams } from './schemas.js';

const tags = ['schedules'];

/** `/schedules`: time windows that switch VMs to deny or allowlist-only. */
export const scheduleRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  const { policy } = deps;

  app.get(
    '/schedules',
    { schema: doc({ tags, summary: 'List the schedules' }, { response: { 200: Type.Array(Schedule) } }) },
    async () => policy.listSchedules(),
  );

  app.get(
    '/schedules/:name',
    {
      schema: doc({ tags, summary: 'Show a schedule' }, { params: NameParams, response: { 200: Schedule } }),
    },
    async (req) => policy.getSchedule(req.params.name),
  );

  app.post(
    '/schedules',
    { schema: doc({ tags, summary: 'Add a schedule' }, { body: Schedule, response: { 201: Schedule } }) },
    async (req, reply) => reply.code(201).send(await policy.addSchedule(req.body, mutationContext(req))),
  );

  app.put(
    '/schedules/:name',
    {
      schema: doc(
        { tags, summary: 'Replace a schedule', description: 'The name cannot change.' },
        { params: NameParams, body: Schedule, response: { 200: Schedule } },
      ),
    },
    async (req) => policy.updateSchedule(req.params.name, req.body, mutationContext(req)),
  );

  app.delete(
    '/schedules/:name',
    {
      schema: doc(
        { tags, summary: 'Remove a schedule' },
        { params: NameParams, response: { 204: Type.Null() } },
      ),
    },
    async (req, reply) => {
      await policy.removeSchedule(req.params.name, mutationContext(req));
      return reply.code(204).send(null);
    },
  );
};
