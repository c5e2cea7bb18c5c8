// End to end through the generated client only: a real `decabill serve` (users mode, fresh SQLite file) with
// Hetzner Cloud played by the local fake, and its Socket.IO gateway reached with socket.io-client.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { after, before, test } from 'node:test';

import { io, type Socket } from 'socket.io-client';

import {
  type Client,
  createAdminCustomerProfile,
  createDecabillClient,
  createManualInvoice,
  createServicePlan,
  createServiceType,
  createSubscription,
  confirmEmail,
  createUser,
  downloadAdminInvoicePdf,
  downloadInvoicePdfByRef,
  getConfig,
  getCustomerProfile,
  getInvoiceDetailsByRef,
  issueManualInvoice,
  listPublicServicePlanOfferings,
  listSubscriptionItems,
  login,
  register,
  stopSubscriptionItemServer,
} from '../src/index.js';
import { eventually, type FakeCloud, mailsTo, type RunningServer, startFakeCloud, startServer } from './harness.js';

/** What every generated operation resolves to when it does not throw. */
interface Outcome<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The body of a successful call; anything else fails the test with the server's ErrorResponse. */
async function ok<T>(call: Promise<Outcome<T>>, status = 200): Promise<T> {
  const { data, error, response } = await call;
  assert.equal(response.status, status, `${response.url}: ${JSON.stringify(error)}`);
  assert.ok(data !== undefined, `${response.url}: no body`);
  return data;
}

const ADMIN = { email: 'owner@example.com', password: 'owner-password-1' };
const CUSTOMER = { email: 'ada@example.com', password: 'ada-password-1' };
const PROFILE = {
  firstName: 'Ada',
  lastName: 'Lovelace',
  company: 'Analytical Engines Ltd',
  email: 'billing@analytical.example',
  addressLine1: '1 Analytical Way',
  postalCode: '10115',
  city: 'Berlin',
  country: 'DE',
};

let cloud: FakeCloud & { stop(): Promise<void> };
let server: RunningServer;
let anonymous: Client;
let admin: Client;
let customer: Client;
let customerToken: string;
let customerId: string;
let planId: string;

before(async () => {
  cloud = await startFakeCloud();
  server = await startServer({
    AUTHENTICATION_METHOD: 'users',
    JWT_SECRET: 'e2e-secret-of-the-typescript-client-test',
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(cloud.smtpPort),
    EMAIL_FROM: 'billing@decabill.test',
    HETZNER_API_TOKEN: cloud.hetznerToken,
    HETZNER_API_URL: cloud.hetznerUrl,
    PROVISIONING_IP_POLL_INTERVAL_MS: '10',
    PROVISIONING_IP_POLL_ATTEMPTS: '5',
    BILLING_ISSUER_NAME: 'Decabill Hosting GmbH',
    BILLING_ISSUER_VAT_ID: 'DE123456789',
    BILLING_ISSUER_ADDRESS_LINE1: 'Hauptstrasse 1',
    BILLING_ISSUER_POSTAL_CODE: '10117',
    BILLING_ISSUER_CITY: 'Berlin',
  });
  anonymous = createDecabillClient({ baseUrl: server.apiUrl });
});

after(async () => {
  await server?.stop();
  await cloud?.stop();
});

test('the server reports the users authentication mode', async () => {
  const config = await ok(getConfig({ client: anonymous }));
  assert.equal(config.authenticationMethod, 'users');
});

test('the first registered user is a confirmed admin and can log in', async () => {
  const registered = await ok(register({ client: anonymous, body: ADMIN }), 201);
  assert.equal(registered.user?.role, 'admin');
  const session = await ok(login({ client: anonymous, body: ADMIN }));
  assert.ok(session.access_token);
  admin = createDecabillClient({ baseUrl: server.apiUrl, token: session.access_token });
});

test('an admin builds the catalog and it shows up in the public offerings', async () => {
  const serviceType = await ok(
    createServiceType({
      client: admin,
      body: { key: 'controller-hetzner', name: 'Agent controller', provider: 'hetzner' },
    }),
    201,
  );
  const plan = await ok(
    createServicePlan({
      client: admin,
      body: {
        serviceTypeId: serviceType.id!,
        name: 'Controller S',
        billingIntervalType: 'month',
        billingIntervalValue: 1,
        basePrice: '10.00',
        providerConfigDefaults: { serverType: 'cx22', location: 'fsn1', service: 'controller' },
      },
    }),
    201,
  );
  planId = plan.id!;

  const offerings = await ok(listPublicServicePlanOfferings({ client: anonymous, query: { limit: 50 } }));
  const offering = offerings.find((entry) => entry.id === planId);
  assert.ok(offering, 'the new plan is offered publicly');
  assert.equal(offering.name, 'Controller S');
  assert.equal(offering.serviceTypeName, 'Agent controller');
  assert.equal(offering.billingIntervalType, 'month');
});

test('an admin creates a customer, who confirms the mailed code, with a complete billing profile', async () => {
  const user = await ok(createUser({ client: admin, body: { ...CUSTOMER, role: 'user' } }), 201);
  customerId = user.id!;
  assert.equal(user.emailConfirmedAt ?? null, null, 'unconfirmed until the mailed code is entered');

  const mail = await eventually(async () => (await mailsTo(cloud, CUSTOMER.email))[0]);
  const code = /code is:\s*([A-Z0-9]{6})\b/.exec(mail.text)?.[1];
  assert.ok(code, mail.text);
  await ok(confirmEmail({ client: anonymous, body: { email: CUSTOMER.email, code } }));

  const profile = await ok(createAdminCustomerProfile({ client: admin, body: { userId: customerId, ...PROFILE } }), 201);
  assert.equal(profile.userId, customerId);
  assert.equal(profile.country, 'DE');

  const session = await ok(login({ client: anonymous, body: CUSTOMER }));
  customerToken = session.access_token!;
  customer = createDecabillClient({ baseUrl: server.apiUrl, token: customerToken });
  const own = await ok(getCustomerProfile({ client: customer }));
  assert.equal(own?.company, PROFILE.company);
});

test('a manual invoice is drafted, issued and downloaded as a Factur-X PDF', async () => {
  const draft = await ok(
    createManualInvoice({
      client: admin,
      body: {
        userId: customerId,
        lineItems: [
          { description: 'Migration support', quantity: 3, unitPriceNet: 80, taxCategory: 'standard' },
          { description: 'Setup fee', quantity: 1, unitPriceNet: 49.9 },
        ],
      },
    }),
    201,
  );
  assert.equal(draft.status, 'draft');
  assert.equal(draft.invoiceNumber ?? null, null);

  const issued = await ok(issueManualInvoice({ client: admin, path: { invoiceRefId: draft.id! }, body: {} }));
  assert.equal(issued.status, 'issued');
  assert.match(issued.invoiceNumber ?? '', /^INV-\d{4}-\d{5}$/);
  // 3 x 80.00 + 49.90 = 289.90 net, 19 % standard tax = 55.08, gross 344.98.
  assert.deepEqual(
    [issued.subtotalNet, issued.taxTotal, issued.totalGross, issued.balanceDue].map(Number),
    [289.9, 55.08, 344.98, 344.98],
  );

  const seen = await ok(getInvoiceDetailsByRef({ client: customer, path: { invoiceRefId: draft.id! } }));
  assert.equal(seen.invoiceNumber, issued.invoiceNumber);

  for (const download of [
    downloadAdminInvoicePdf({ client: admin, path: { invoiceRefId: draft.id! }, parseAs: 'arrayBuffer' }),
    downloadInvoicePdfByRef({ client: customer, path: { invoiceRefId: draft.id! }, parseAs: 'arrayBuffer' }),
  ]) {
    const { data, response } = await download;
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/pdf');
    const pdf = Buffer.from(data as unknown as ArrayBuffer);
    if (process.env.DECABILL_E2E_ARTIFACTS) {
      // Keep the document for a human to open (set by `make client-e2e ARTIFACTS=dir`).
      writeFileSync(join(process.env.DECABILL_E2E_ARTIFACTS, `${issued.invoiceNumber}.pdf`), pdf);
    }
    assert.equal(pdf.subarray(0, 5).toString('latin1'), '%PDF-');
    const streams = pdfStreams(pdf);
    const xml = streams.find((stream) => stream.includes('CrossIndustryInvoice'));
    assert.ok(xml, 'the Factur-X (EN 16931) XML is embedded');
    assert.ok(xml.includes(`<ram:ID>${issued.invoiceNumber}</ram:ID>`), "the XML carries the invoice number");
    assert.ok(xml.includes('urn:cen.eu:en16931:2017'), 'EN 16931 guideline');
    assert.ok(streams.some((stream) => stream.includes('pdfaid:part')), 'PDF/A identification in the XMP metadata');
    assert.match(pdf.toString('latin1'), /\/AFRelationship \/Data/);
  }

  // The customer is told by mail, at the profile's billing address, with the PDF attached.
  const mail = await eventually(async () =>
    (await mailsTo(cloud, PROFILE.email)).find((entry) => entry.subject.includes(issued.invoiceNumber!)),
  );
  assert.deepEqual(mail.attachments, [`${issued.invoiceNumber}.pdf`]);
});

/** The contents of every stream of a PDF, inflated where they are Flate-compressed. */
function pdfStreams(pdf: Buffer): string[] {
  const raw = pdf.toString('latin1');
  const found: string[] = [];
  for (const match of raw.matchAll(/stream\r?\n/g)) {
    const start = match.index + match[0].length;
    const end = raw.indexOf('endstream', start);
    if (end < 0) continue;
    const body = pdf.subarray(start, end);
    try {
      found.push(inflateSync(body).toString('utf8'));
    } catch {
      found.push(body.toString('latin1'));
    }
  }
  return found;
}

/** Waits for the next event of one name on a socket. */
function next<T>(socket: Socket, event: string, timeoutMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    socket.once(event, (payload: T) => {
      clearTimeout(timer);
      resolve(payload);
    });
  });
}

interface DashboardItem {
  subscriptionId: string;
  itemId: string;
  status: string;
  publicIp: string;
}

test('the dashboard gateway streams the status of the customer servers', async () => {
  const subscription = await ok(createSubscription({ client: customer, body: { planId } }), 201);
  const [item] = await ok(listSubscriptionItems({ client: customer, path: { subscriptionId: subscription.id! } }));
  assert.ok(item);
  assert.equal(item.provisioningStatus, 'active');

  const socket = io(`${server.socketUrl}/billing`, {
    transports: ['websocket'],
    auth: { Authorization: `Bearer ${customerToken}` },
    reconnection: false,
  });
  try {
    await next(socket, 'connect', 10_000);
    const first = next<{ generatedAt: string; items: DashboardItem[] }>(socket, 'dashboardStatusUpdate');
    socket.emit('subscribeDashboardStatus', { pollIntervalMs: 10_000 });
    const snapshot = await first;
    assert.ok(!Number.isNaN(Date.parse(snapshot.generatedAt)));
    assert.equal(snapshot.items.length, 1);
    assert.equal(snapshot.items[0]?.subscriptionId, subscription.id);
    assert.equal(snapshot.items[0]?.itemId, item.id);
    assert.equal(snapshot.items[0]?.status, 'running');

    // Power the server off through the API; the next tick of the stream reports it.
    await ok(stopSubscriptionItemServer({ client: customer, path: { subscriptionId: subscription.id!, itemId: item.id! } }));
    const update = await next<{ items: DashboardItem[] }>(socket, 'dashboardStatusUpdate');
    assert.equal(update.items[0]?.status, 'off');
  } finally {
    socket.disconnect();
  }
});
