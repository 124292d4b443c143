/** The REST API: register `registerApi` under `API_PREFIX` on the service's Fastify instance. */
export { API_PREFIX, registerApi, type ApiOptions } from './api.js';
export { errorResponse, rejectedCounter } from './error-handler.js';
export { ErrorResponse } from './schemas.js';
