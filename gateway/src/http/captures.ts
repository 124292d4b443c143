import { createReadStream } from 'node:fs';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { CaptureService } from '../capture/service.js';
import { doc, mutationContext } from './route-helpers.js';

/** The media type of a pcap file (IANA). */
export const PCAP_TYPE = 'application/vnd.tcpdump.pcap';

export const Capture = Type.Object(
  {
    id: Type.String(),
    vm: Type.String(),
    alertId: Type.Optional(Type.Integer({ description: 'the alert whose flow this captures' })),
    iface: Type.String({ description: 'the interface tcpdump listens on in the security VM' }),
    filter: Type.String({ description: 'the BPF filter, built from the VM and the alert' }),
    seconds: Type.Integer(),
    maxBytes: Type.Integer(),
    state: Type.Union([Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')]),
    startedAt: Type.String({ format: 'date-time' }),
    endedAt: Type.Optional(Type.String({ format: 'date-time' })),
    bytes: Type.Integer({ description: 'size of the pcap; whole packets only once ended' }),
    packets: Type.Integer({ description: 'whole packets, once ended' }),
    dropped: Type.Optional(
      Type.Integer({
        description: "packets the kernel dropped because tcpdump did not keep up (tcpdump's count)",
      }),
    ),
    reason: Type.Optional(Type.String({ description: 'why it ended: time, size, stopped, or what failed' })),
    actor: Type.String({ description: 'who started it' }),
  },
  { additionalProperties: false },
);

const Seconds = Type.Integer({
  minimum: 1,
  description: 'how long to capture, seconds (1 to capture.maxSeconds)',
});
const MaxBytes = Type.Integer({
  minimum: 1,
  description:
    'stop when the file reaches this size, bytes (64 KiB to capture.maxBytes; default capture.maxBytes)',
});

const CaptureBody = Type.Union([
  Type.Object(
    { vm: Type.String({ minLength: 1, maxLength: 64 }), seconds: Seconds, maxBytes: Type.Optional(MaxBytes) },
    { additionalProperties: false, description: 'every frame of a VM' },
  ),
  Type.Object(
    {
      alertId: Type.Integer({ minimum: 1 }),
      seconds: Type.Optional({ ...Seconds, description: 'default 60' }),
      maxBytes: Type.Optional(MaxBytes),
    },
    {
      additionalProperties: false,
      description: "the flow of an alert of the alert log (its VM's frames between its two addresses)",
    },
  ),
]);

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 80 }) });

/** How long an alert's flow is captured when the request does not say, seconds. */
const ALERT_SECONDS = 60;

/**
 * `/captures`: packet captures of a VM or of an alert's flow (admins only: `decide`),
 * listed with their state, downloaded as pcap, deleted. Starting one answers once
 * tcpdump listens (201); it then runs for its seconds or until its size bound.
 */
export const captureRoutes: FastifyPluginAsync<{ captures: CaptureService }> = async (app, opts) => {
  const captures = opts.captures;

  app.post<{
    Body:
      | { vm: string; seconds: number; maxBytes?: number }
      | { alertId: number; seconds?: number; maxBytes?: number };
  }>(
    '/captures',
    {
      schema: doc(
        {
          tags: ['captures'],
          summary: "Start a packet capture of a VM, or of an alert's flow; answers once tcpdump listens",
        },
        { body: CaptureBody, response: { 201: Capture } },
      ),
    },
    async (req, reply) => {
      const { actor } = mutationContext(req);
      const b = req.body;
      const info = await captures.begin(
        'vm' in b
          ? { vm: b.vm, seconds: b.seconds, maxBytes: b.maxBytes }
          : { alertId: b.alertId, seconds: b.seconds ?? ALERT_SECONDS, maxBytes: b.maxBytes },
        actor,
      );
      return reply.code(201).header('location', `captures/${info.id}.pcap`).send(info);
    },
  );

  app.get(
    '/captures',
    {
      schema: doc(
        { tags: ['captures'], summary: 'The packet captures kept, newest first' },
        { response: { 200: Type.Array(Capture) } },
      ),
    },
    async () => captures.list(),
  );

  app.get<{ Params: { id: string } }>(
    '/captures/:id',
    {
      schema: doc(
        {
          tags: ['captures'],
          summary: `One packet capture; with the suffix .pcap, its file (${PCAP_TYPE})`,
          produces: [PCAP_TYPE],
        },
        { params: IdParams, response: { 200: Capture } },
      ),
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!id.endsWith('.pcap')) return captures.get(id);
      const { path, info } = captures.download(id.slice(0, -'.pcap'.length), mutationContext(req).actor);
      return reply
        .header('content-type', PCAP_TYPE)
        .header('content-disposition', `attachment; filename="portcullis-${info.id}.pcap"`)
        .header('content-length', String(info.bytes))
        .header('cache-control', 'no-store')
        .send(createReadStream(path));
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/captures/:id',
    {
      schema: doc(
        { tags: ['captures'], summary: 'Stop a packet capture if it runs, and delete it and its file' },
        { params: IdParams, response: { 204: Type.Null() } },
      ),
    },
    async (req, reply) => {
      await captures.remove(req.params.id, mutationContext(req).actor);
      return reply.code(204).send();
    },
  );
};
