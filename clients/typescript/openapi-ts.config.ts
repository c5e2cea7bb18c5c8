// `npm run generate` (or `make client` at the repository root) rewrites src/generated from our spec.
// The generated code is committed; CI regenerates it and fails when it differs (make client-check).
import { defineConfig } from '@hey-api/openapi-ts';

export default defineConfig({
  input: '../../spec/openapi.yaml',
  output: {
    // OPENAPI_TS_OUTPUT lets the check generate elsewhere and compare with the committed files.
    path: process.env.OPENAPI_TS_OUTPUT ?? 'src/generated',
    postProcess: [],
    // NodeNext resolution needs explicit extensions; keeps the package usable from plain Node ESM.
    module: { extension: '.js' },
  },
  plugins: [
    '@hey-api/client-fetch',
    '@hey-api/typescript',
    // One function per operation, named after its operationId (createServiceType, listInvoices, ...).
    '@hey-api/sdk',
  ],
});
