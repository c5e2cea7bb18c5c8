// Starts what the end-to-end test talks to, as real processes: the local fakes of the cloud and payment APIs
// (`python -m tests.fakes.server`) and `decabill serve` on a fresh SQLite file, on free ports of 127.0.0.1.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const REPO = resolve(process.env.DECABILL_REPO ?? join(process.cwd(), '..', '..'));
const PYTHON = process.env.DECABILL_PYTHON ?? join(REPO, '.venv', 'bin', 'python');

export interface FakeCloud {
  url: string;
  hetznerUrl: string;
  hetznerToken: string;
  smtpPort: number;
}

export interface Mail {
  to: string;
  subject: string;
  text: string;
  attachments: string[];
}

/** Mails the SMTP sink of the fakes received for one address, oldest first. */
export async function mailsTo(cloud: FakeCloud, address: string): Promise<Mail[]> {
  const response = await fetch(`${cloud.url}/smtp/messages?to=${encodeURIComponent(address)}`);
  return (await response.json()) as Mail[];
}

/** Waits until `probe` returns something truthy (mails are sent after the transaction commits). */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((done) => setTimeout(done, 100));
  }
}

export interface RunningServer {
  apiUrl: string;
  socketUrl: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** Output of a child kept for the failure message; the server logs JSON lines on stderr. */
function capture(child: ChildProcess): string[] {
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    if (stream) createInterface({ input: stream }).on('line', (line) => lines.push(line));
  }
  return lines;
}

export async function startFakeCloud(): Promise<FakeCloud & { stop(): Promise<void> }> {
  const child = spawn(PYTHON, ['-m', 'tests.fakes.server'], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const urls = JSON.parse(line) as FakeCloud;
  return { ...urls, stop: () => stopProcess(child) };
}

export async function startServer(env: Record<string, string>): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'decabill-e2e-'));
  const [port, socketPort] = [await freePort(), await freePort()];
  const child = spawn(join(dirname(PYTHON), 'decabill'), ['serve'], {
    cwd: dataDir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOST: '127.0.0.1',
      PORT: String(port),
      WEBSOCKET_PORT: String(socketPort),
      DECABILL_DATA_DIR: dataDir,
      LOG_LEVEL: 'warning',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = capture(child);
  const apiUrl = `http://127.0.0.1:${port}/api`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`decabill serve exited:\n${output.join('\n')}`);
    try {
      if ((await fetch(`${apiUrl}/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`decabill serve did not start:\n${output.join('\n')}`);
    await new Promise((done) => setTimeout(done, 200));
  }
  return {
    apiUrl,
    socketUrl: `http://127.0.0.1:${socketPort}`,
    async stop() {
      await stopProcess(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
