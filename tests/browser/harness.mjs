// Real processes for the browser test: a redis-server with the freshly built
// Violet module and the freshly built shim, each on a free loopback port.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
  : path.join(repoRoot, 'target');
export const modulePath = path.join(targetDir, 'release', 'libviolet.so');
export const shimPath = path.join(targetDir, 'release', 'violet-shim');

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Builds the module and the shim (a no-op when they are fresh). */
export function buildRelease() {
  const result = spawnSync('cargo', ['build', '--release', '--quiet', '-p', 'violet', '-p', 'violet-shim'], {
    cwd: repoRoot,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (result.error) throw new Error(`could not run cargo: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`cargo build --release failed (exit ${result.status})`);
  for (const file of [modulePath, shimPath]) {
    if (!existsSync(file)) throw new Error(`${file} is missing after the build`);
  }
}

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/** A child process whose output is kept (the last 64 KiB) for failure reports. */
class Proc {
  constructor(name, command, args) {
    this.name = name;
    this.output = '';
    this.exited = null;
    this.child = spawn(command, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-65536);
    };
    this.child.stdout.on('data', keep);
    this.child.stderr.on('data', keep);
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = { code, signal };
        live.delete(this.child);
        resolve();
      });
      this.child.on('error', (err) => {
        this.output += `\n[spawn error] ${err.message}`;
        this.exited = { code: null, signal: null, error: err };
        live.delete(this.child);
        resolve();
      });
    });
  }

  /** Throws with the process's output if it has exited. */
  assertRunning() {
    if (this.exited) {
      throw new Error(`${this.name} exited (${JSON.stringify(this.exited)}):\n${this.output}`);
    }
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop(graceMs = 5000) {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (!this.exited) this.child.kill('SIGKILL'); }, graceMs);
    await this.exitPromise;
    clearTimeout(timer);
  }
}

async function waitUntil(what, proc, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    proc.assertRunning();
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`${what} was not ready after ${timeoutMs} ms (${last ? last.message : 'no answer'}):\n${proc.output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function redisPing(port) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    socket.setTimeout(1000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('\r\n')) {
        socket.end();
        resolve(data.startsWith('+PONG'));
      }
    });
  });
}

/** Sends one command to Redis on `port`; resolves with the raw RESP reply. */
export function redisCommand(port, args) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
    socket.on('connect', () => {
      const parts = args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
      socket.write(`*${args.length}\r\n${parts}`);
    });
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('\r\n')) {
        socket.end();
        resolve(data);
      }
    });
  });
}

/** Starts redis-server with the module on a free port. */
export async function startRedis() {
  const port = await freePort();
  const proc = new Proc('redis-server', 'redis-server', [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--dir', os.tmpdir(),
    '--loadmodule', modulePath,
    '--save', '',
    '--appendonly', 'no',
  ]);
  proc.port = port;
  proc.url = `redis://127.0.0.1:${port}`;
  await waitUntil('redis-server', proc, () => redisPing(port), 20000);
  return proc;
}

/**
 * Starts the shim against `redisUrl` on `port` (a free one unless given),
 * serving `namespaces` (the first at /ws), and waits for GET /healthz.
 */
export async function startShim(redisUrl, port = undefined, namespaces = ['watch-party', 'games']) {
  port ??= await freePort();
  const proc = new Proc('violet-shim', shimPath, [
    '--port', String(port),
    '--redis-url', redisUrl,
    '--static-dir', path.join(repoRoot, 'static'),
    ...namespaces.flatMap((ns) => ['--namespace', ns]),
  ]);
  proc.port = port;
  proc.baseUrl = `http://127.0.0.1:${port}`;
  await waitUntil('violet-shim', proc, async () => {
    const response = await fetch(`${proc.baseUrl}/healthz`);
    await response.arrayBuffer();
    return response.status === 200;
  }, 30000);
  return proc;
}
