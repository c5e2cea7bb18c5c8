// Public entry point: every operation of the Decabill Billing API as a function named after its operationId
// (generated into ./generated from spec/openapi.yaml, never edited by hand), plus helpers to create clients.
import { type Client, createClient, createConfig } from './generated/client/index.js';
import { client } from './generated/client.gen.js';

export * from './generated/index.js';
export * from './webhooks.js';
export { client };
export type { Client };

export interface DecabillClientSettings {
  /** Base URL including the `/api` prefix, e.g. `https://billing.example.com/api`. */
  baseUrl: string;
  /** Bearer credential: a JWT (users/keycloak modes) or the API key (api-key mode). */
  token?: string;
  /** Tenant to act in (`X-Tenant`); the server uses `default` without it. */
  tenant?: string;
}

function clientConfig(settings: DecabillClientSettings) {
  return {
    baseUrl: settings.baseUrl,
    auth: settings.token,
    headers: settings.tenant ? { 'X-Tenant': settings.tenant } : {},
  };
}

/**
 * A client of its own (one per user or tenant); pass it to any operation: `listInvoices({ client, path })`.
 */
export function createDecabillClient(settings: DecabillClientSettings): Client {
  return createClient(createConfig(clientConfig(settings)));
}

/** Point the shared default client (used when an operation gets no `client`) at a server. */
export function configureClient(settings: DecabillClientSettings): void {
  client.setConfig(clientConfig(settings));
}
