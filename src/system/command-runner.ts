/**
 * Runs short commands through hpcq-command-runner (src/launcher/hpcq-command-runner.c, whose
 * header documents the protocol): one small process, started on first use, forks for the daemon,
 * so that starting a command never forks the daemon's own large process on its event loop.
 *
 * If the runner dies, the commands it was running are answered as failed to start, and the next
 * command starts a new runner.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { libexecPath } from '../package-root.js';

export interface CommandOptions {
  /** The command's entire environment (its PATH is also where a bare program name is looked for). */
  env: Readonly<Record<string, string>>;
  /** Bytes for its stdin; none = EOF at once. */
  input?: string;
  /** Killed (SIGKILL) after this long; 0 = no deadline. */
  timeoutMs: number;
}

export interface CommandOutcome {
  /** Exit status; null when killed by a signal, at the deadline, or never started. */
  code: number | null;
  /** The signal that killed it (not at the deadline). */
  signal: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Why it could not be started, if it was not. */
  startError?: string;
}

const HEADER = 24;

export class CommandRunner {
  private proc: ChildProcess | undefined;
  private nextId = 1;
  private readonly waiting = new Map<number, (outcome: CommandOutcome) => void>();
  /** Answer bytes not yet taken: chunks, joined only once a whole answer is there. */
  private chunks: Buffer[] = [];
  private chunkBytes = 0;

  constructor(private readonly executable: string = libexecPath('hpcq-command-runner')) {}

  run(argv: readonly string[], options: CommandOptions): Promise<CommandOutcome> {
    if (argv.length === 0) return Promise.reject(new RangeError('a command needs a program'));
    const id = this.nextId++ >>> 0;
    const input = Buffer.from(options.input ?? '');
    const strings = Buffer.from([...argv, ...Object.entries(options.env).map(([k, v]) => `${k}=${v}`)].map((s) => `${s}\0`).join(''));
    const frame = Buffer.alloc(4 + 20 + strings.length + input.length);
    frame.writeUInt32LE(20 + strings.length + input.length, 0);
    frame.writeUInt32LE(id, 4);
    frame.writeUInt32LE(Math.max(0, Math.min(options.timeoutMs, 0xffffffff)), 8);
    frame.writeUInt32LE(argv.length, 12);
    frame.writeUInt32LE(Object.keys(options.env).length, 16);
    frame.writeUInt32LE(input.length, 20);
    strings.copy(frame, 24);
    input.copy(frame, 24 + strings.length);
    return new Promise((resolve) => {
      const proc = this.started();
      this.waiting.set(id, resolve);
      if (this.waiting.size === 1) this.keepAlive(proc, true);
      proc.stdin!.write(frame);
    });
  }

  /** Lets the runner go (it exits once its commands are done). */
  close(): void {
    this.proc?.stdin?.end();
    this.proc = undefined;
  }

  private started(): ChildProcess {
    if (this.proc) return this.proc;
    // Nothing of the daemon's: no environment, cwd /, only its three pipes.
    const proc = spawn(this.executable, [], { stdio: ['pipe', 'pipe', 'inherit'], env: {}, cwd: '/' });
    this.proc = proc;
    this.chunks = [];
    this.chunkBytes = 0;
    proc.stdin!.on('error', () => undefined);
    proc.stdout!.on('data', (chunk: Buffer) => this.answers(chunk));
    const gone = (why: string) => {
      if (this.proc === proc) this.proc = undefined;
      const waiting = [...this.waiting.values()];
      this.waiting.clear();
      for (const resolve of waiting) resolve({ code: null, signal: null, timedOut: false, stdout: '', stderr: why, startError: why });
    };
    proc.on('error', (err) => gone(`cannot start ${this.executable}: ${err.message}`));
    proc.on('exit', (code, signal) => gone(`the command runner ended (${signal ?? `status ${code}`})`));
    this.keepAlive(proc, false);
    return proc;
  }

  /** The runner keeps the daemon's event loop alive only while it runs commands for it. */
  private keepAlive(proc: ChildProcess, on: boolean): void {
    const stdout = proc.stdout as unknown as { ref?: () => void; unref?: () => void };
    if (on) {
      proc.ref();
      stdout.ref?.();
    } else {
      proc.unref();
      stdout.unref?.();
    }
  }

  private answers(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunkBytes += chunk.length;
    for (;;) {
      if (this.chunkBytes < 4) return;
      if (this.chunks[0]!.length < 4) this.chunks = [Buffer.concat(this.chunks)];
      const len = this.chunks[0]!.readUInt32LE(0);
      if (this.chunkBytes < 4 + len) return;
      const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
      const a = all.subarray(4, 4 + len);
      const rest = all.subarray(4 + len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.chunkBytes = rest.length;
      const [id, kind, value, outLen, errLen] = [0, 4, 8, 12, 16].map((at) => a.readUInt32LE(at)) as [number, number, number, number, number];
      const stdout = a.subarray(HEADER - 4, HEADER - 4 + outLen).toString();
      const stderr = a.subarray(HEADER - 4 + outLen, HEADER - 4 + outLen + errLen).toString();
      const resolve = this.waiting.get(id);
      this.waiting.delete(id);
      if (this.waiting.size === 0 && this.proc) this.keepAlive(this.proc, false);
      resolve?.({
        code: kind === 0 ? value : null,
        signal: kind === 1 ? value : null,
        timedOut: kind === 2,
        stdout,
        stderr,
        ...(kind === 3 ? { startError: stderr || `errno ${value}` } : {}),
      });
    }
  }
}
