// Receiving Decabill's webhooks and retrying writes safely: helpers written by hand next to the generated client.
import type { WebhookEvent } from './generated/types.gen.js';

/** The header that carries a delivery's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`. */
export const WEBHOOK_SIGNATURE_HEADER = 'Decabill-Signature';
/** Deliveries signed longer ago than this are refused (a replayed old request). */
export const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

export interface VerifyWebhookOptions {
  /** Largest accepted distance between the signature's time and now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** "Now" in Unix seconds (default: the clock). */
  now?: number;
}

const encoder = new TextEncoder();

function bytesOf(body: string | Uint8Array): Uint8Array {
  return typeof body === 'string' ? encoder.encode(body) : body;
}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function sameText(a: string, b: string): boolean {
  // Constant time for equal lengths: the comparison does not stop at the first difference.
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i += 1) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

async function signatureOf(secret: string, timestamp: number, body: Uint8Array): Promise<string> {
  const key = await globalThis.crypto.subtle.importKey(
    'raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'],
  );
  const prefix = encoder.encode(`${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix);
  signed.set(body, prefix.length);
  return hex(await globalThis.crypto.subtle.sign('HMAC', key, signed));
}

/**
 * True when `header` (the `Decabill-Signature` request header) is a valid signature of the RAW request body by
 * the endpoint's secret (or one of several while rotating), made within the tolerance. Verify before parsing
 * the body: a re-serialised JSON body no longer matches.
 */
export async function verifyWebhookSignature(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string | string[],
  options: VerifyWebhookOptions = {},
): Promise<boolean> {
  if (!header) return false;
  let timestamp: number | undefined;
  const given: string[] = [];
  for (const part of header.split(',')) {
    const [name, value = ''] = part.trim().split('=', 2);
    if (name === 't' && /^\d+$/.test(value)) timestamp = Number(value);
    else if (name === 'v1') given.push(value);
  }
  if (timestamp === undefined || given.length === 0) return false;
  const now = options.now ?? Date.now() / 1000;
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS)) return false;
  const body = bytesOf(rawBody);
  for (const candidate of Array.isArray(secret) ? secret : [secret]) {
    const expected = await signatureOf(candidate, timestamp, body);
    if (given.some((signature) => sameText(signature, expected))) return true;
  }
  return false;
}

/** Verify a delivery and parse it into the typed event (switch on `event.type`); throws when the signature fails. */
export async function constructWebhookEvent(
  rawBody: string | Uint8Array,
  header: string | null | undefined,
  secret: string | string[],
  options: VerifyWebhookOptions = {},
): Promise<WebhookEvent> {
  if (!(await verifyWebhookSignature(rawBody, header, secret, options))) {
    throw new Error('Decabill webhook signature verification failed');
  }
  const text = typeof rawBody === 'string' ? rawBody : new TextDecoder().decode(rawBody);
  return JSON.parse(text) as WebhookEvent;
}

/** A fresh `Idempotency-Key` value; keep it for every retry of the same write. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * Headers that make a write safe to retry, for any operation documented with `Idempotency-Key`:
 * `createSubscription({ body, headers: idempotencyHeaders(key) })`. A retry with the same key and body gets the
 * first answer; 409 means the first attempt is still running (retry later); 422 means the key was used for a
 * different request.
 */
export function idempotencyHeaders(key: string = newIdempotencyKey()): { 'Idempotency-Key': string } {
  return { 'Idempotency-Key': key };
}
