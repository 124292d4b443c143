import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Vm } from '../policy/model.js';
import { doc, mutationContext, type ResourceOptions } from './route-helpers.js';
import { NameParams, QuarantineBody, VmInput, VmPatch } from './schemas.js';

const tags = ['vms'];

/** `/vms`: the guest VMs, and their quarantine. */
export const vmRoutes: FastifyPluginAsyncTypebox<ResourceOptions> = async (app, { deps }) => {
  const { policy } = deps;

  app.get(
    '/vms',
    { schema: doc({ tags, summary: 'List the VMs' }, { response: { 200: Type.Array(Vm) } }) },
    async () => policy.listVms(),
  );

  app.get(
    '/vms/:name',
    { schema: doc({ tags, summary: 'Show a VM' }, { params: NameParams, response: { 200: Vm } }) },
    async (req) => policy.getVm(req.params.name),
  );

  app.post(
    '/vms',
    { schema: doc({ tags, summary: 'Add a VM' }, { body: VmInput, response: { 201: Vm } }) },
    async (req, reply) => reply.code(201).send(await policy.addVm(req.body, mutationContext(req))),
  );

  app.patch(
    '/vms/:name',
    {
      schema: doc(
        { tags, summary: "Change a VM's fields", description: 'null removes an optional field' },
        { params: NameParams, body: VmPatch, response: { 200: Vm } },
      ),
    },
    async (req) => policy.updateVm(req.params.name, req.body, mutationContext(req)),
  );

  app.delete(
    '/vms/:name',
    {
      schema: doc(
        { tags, summary: 'Remove a VM and its rules' },
        { params: NameParams, response: { 204: Type.Null() } },
      ),
    },
    async (req, reply) => {
      await policy.removeVm(req.params.name, mutationContext(req));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/vms/:name/quarantine',
    {
      schema: doc(
        {
          tags,
          summary: 'Quarantine a VM',
          description:
            'Only DNS and the update servers stay reachable. A VM in quarantine stays so, with its first reason.',
        },
        { params: NameParams, body: QuarantineBody, response: { 200: Vm } },
      ),
    },
    async (req) => policy.quarantine(req.params.name, req.body.reason, mutationContext(req)),
  );

  app.delete(
    '/vms/:name/quarantine',
    {
      schema: doc(
        { tags, summary: 'Release a VM from quarantine' },
        { params: NameParams, response: { 200: Vm } },
      ),
    },
    async (req) => policy.release(req.params.name, mutationContext(req)),
  );
};
