// HTTP routes of /v2/webhooks (API keys): subscriptions, and the deliveries of each.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { baseUrl } from '../http/base-url.js';
import { errorResponses, pageSchema } from '../http/schemas.js';
import { CreateWebhookBodySchema, DeliveryParamsSchema, ListQuerySchema, WebhookIdParamsSchema } from './webhooks.schemas.js';
import type { WebhooksService } from './webhooks.service.js';

const tags = ['Webhooks'];

export const webhooksRoutes: FastifyPluginAsyncTypebox<{ webhooks: WebhooksService }> = async (app, { webhooks }) => {
  app.post(
    '/webhooks',
    {
      schema: {
        tags,
        operationId: 'createWebhook',
        summary: 'Create a webhook subscription',
        description: 'Events of the chosen kinds are POSTed to `url`, signed when a `secret` is given. The secret is never returned.',
        body: CreateWebhookBodySchema,
        response: { 201: { ...Type.Ref('Webhook'), description: 'The new subscription.' }, ...errorResponses(400, 413, 415) },
      },
    },
    async (request, reply) => reply.code(201).send(await webhooks.create(request.clientId, request.body)),
  );

  app.get(
    '/webhooks',
    {
      schema: {
        tags,
        operationId: 'listWebhooks',
        summary: 'List webhook subscriptions',
        description: 'Oldest first (or newest first: `ordering`), paged like users.',
        querystring: ListQuerySchema,
        response: { 200: { ...pageSchema('Webhook'), description: 'A page of subscriptions.' }, ...errorResponses(400) },
      },
    },
    async (request) => webhooks.list(request.clientId, request.query, baseUrl(request)),
  );

  app.get(
    '/webhooks/:id',
    {
      schema: {
        tags,
        operationId: 'retrieveWebhook',
        summary: 'Retrieve a webhook subscription',
        description: 'Retrieves a subscription (never its secret).',
        params: WebhookIdParamsSchema,
        response: { 200: Type.Ref('Webhook'), ...errorResponses(404) },
      },
    },
    async (request) => webhooks.get(request.clientId, request.params.id),
  );

  app.delete(
    '/webhooks/:id',
    {
      schema: {
        tags,
        operationId: 'deleteWebhook',
        summary: 'Delete a webhook subscription',
        description: 'Stops the events; undelivered ones are dropped with it. 204 status code: No content.',
        params: WebhookIdParamsSchema,
        response: { 204: Type.Null({ description: '204 status code: No content.' }), ...errorResponses(404) },
      },
    },
    async (request, reply) => {
      await webhooks.delete(request.clientId, request.params.id);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/webhooks/:id/deliveries',
    {
      schema: {
        tags,
        operationId: 'listWebhookDeliveries',
        summary: "List a subscription's deliveries",
        description: 'Each event sent (or to be sent) to the subscription: status, attempts, last response code, next attempt. Oldest first (or newest first: `ordering`).',
        params: WebhookIdParamsSchema,
        querystring: ListQuerySchema,
        response: { 200: { ...pageSchema('Delivery'), description: 'A page of deliveries.' }, ...errorResponses(400, 404) },
      },
    },
    async (request) => webhooks.deliveries(request.clientId, request.params.id, request.query, baseUrl(request)),
  );

  app.post(
    '/webhooks/:id/deliveries/:delivery/retry',
    {
      schema: {
        tags,
        operationId: 'retryWebhookDelivery',
        summary: 'Retry a delivery',
        description: 'Makes a failed (or waiting) delivery due now, with a fresh budget of attempts. A delivered one is 409.',
        params: DeliveryParamsSchema,
        response: { 202: { ...Type.Ref('Delivery'), description: 'The delivery, due now.' }, ...errorResponses(404, 409) },
      },
    },
    async (request, reply) => reply.code(202).send(await webhooks.retry(request.clientId, request.params.id, request.params.delivery)),
  );
};
