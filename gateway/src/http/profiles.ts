import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Profile } from '../policy/model.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { NameParams, ProfileView } from './schemas.js';

const tags = ['profiles'];

/** `/profiles`: built-in (read-only) and custom profiles. */
export const profileRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  const { policy } = deps;

  app.get(
    '/profiles',
    {
      schema: doc(
        { tags, summary: 'List built-in and custom profiles' },
        { response: { 200: Type.Array(ProfileView) } },
      ),
    },
    async () => policy.listProfiles(),
  );

  app.get(
    '/profiles/:name',
    {
      schema: doc(
        { tags, summary: 'Show a profile' },
        { params: NameParams, response: { 200: ProfileView } },
      ),
    },
    async (req) => policy.getProfile(req.params.name),
  );

  app.post(
    '/profiles',
    {
      schema: doc(
        { tags, summary: 'Add a custom profile' },
        { body: Profile, response: { 201: ProfileView } },
      ),
    },
    async (req, reply) => reply.code(201).send(await policy.addProfile(req.body, mutationContext(req))),
  );

  app.put(
    '/profiles/:name',
    {
      schema: doc(
        {
          tags,
          summary: 'Replace a custom profile',
          description: 'Built-ins are read-only; the name cannot change.',
        },
        { params: NameParams, body: Profile, response: { 200: ProfileView } },
      ),
    },
    async (req) => policy.updateProfile(req.params.name, req.body, mutationContext(req)),
  );

  app.delete(
    '/profiles/:name',
    {
      schema: doc(
        { tags, summary: 'Remove a custom profile no VM uses' },
        { params: NameParams, response: { 204: Type.Null() } },
      ),
    },
    async (req, reply) => {
      await policy.removeProfile(req.params.name, mutationContext(req));
      return reply.code(204).send(null);
    },
  );
};
