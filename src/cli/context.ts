/**
 * What every client command gets: the resolved address, output mode, deadline and a lazily
 * connected client; and `action()`, which runs a command, reports its failure and sets the exit
 * status.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { resolveAddress } from './address.js';
import { HpcqClient, type RemoteCredentials } from './client.js';
import { describeError, renderFailure } from './errors.js';
import { parseDuration } from './format.js';
import { stringifyJson } from './proto-json.js';

/** Deadline of a unary call when --timeout is not given. */
export const DEFAULT_TIMEOUT_MS = 30_000;

export interface GlobalOptions {
  addr?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  json?: boolean;
  /** Seconds. */
  timeout?: number;
}

/** Wraps a commander option parser so that its Error becomes commander's InvalidArgumentError (exit 2). */
export function optionParser<T>(parse: (value: string, previous?: T) => T): (value: string, previous?: T) => T {
  return (value, previous) => {
    try {
      return parse(value, previous);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** --timeout: seconds (fractions allowed), or a duration as parseDuration reads it. */
export const parseTimeoutOption = optionParser((value: string): number => {
  const seconds = /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : parseDuration(value);
  if (seconds > 0) return seconds;
  throw new Error('the timeout must be a positive number of seconds');
});

/** Adds --addr, --json and --timeout (to the program and to every client command). */
export function addGlobalOptions(cmd: Command): Command {
  return cmd
    .option('--addr <address>', 'hpcqd address, unix:/abs/path.sock or host:port (default: $HPCQ_ADDR, else the daemon\'s default socket)')
    .option('--tls-ca <file>', 'CA certificate (PEM) of a TCP daemon (default: $HPCQ_TLS_CA, else the system roots)')
    .option('--tls-cert <file>', 'client certificate (PEM) for mutual TLS (default: $HPCQ_TLS_CERT)')
    .option('--tls-key <file>', 'key (PEM) of the client certificate (default: $HPCQ_TLS_KEY)')
    .option('--json', 'print the response as JSON: proto field names (snake_case), every field, enums by name')
    .option('--timeout <seconds>', `deadline of each call in seconds, or 1m / 00:01:00 (default ${DEFAULT_TIMEOUT_MS / 1000}; watch and --wait: none unless given)`, parseTimeoutOption);
}

export class CommandContext {
  readonly address: string;
  readonly json: boolean;
  /** Deadline of unary calls, ms. */
  readonly timeoutMs: number;
  /** Deadline of streams (watch, --wait), ms: only when --timeout was given. */
  readonly streamTimeoutMs: number | undefined;
  private clientInstance: HpcqClient | undefined;
  private readonly remote: RemoteCredentials;

  constructor(opts: GlobalOptions, env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0) {
    this.address = resolveAddress(opts.addr, env, uid);
    this.remote = {
      caFile: opts.tlsCa ?? (env.HPCQ_TLS_CA || undefined),
      certFile: opts.tlsCert ?? (env.HPCQ_TLS_CERT || undefined),
      keyFile: opts.tlsKey ?? (env.HPCQ_TLS_KEY || undefined),
      token: env.HPCQ_TOKEN || undefined,
    };
    this.json = opts.json === true;
    this.timeoutMs = opts.timeout !== undefined ? opts.timeout * 1000 : DEFAULT_TIMEOUT_MS;
    this.streamTimeoutMs = opts.timeout !== undefined ? opts.timeout * 1000 : undefined;
  }

  get client(): HpcqClient {
    this.clientInstance ??= new HpcqClient(this.address, this.timeoutMs, this.remote);
    return this.clientInstance;
  }

  out(text: string): void {
    process.stdout.write(text);
  }

  err(text: string): void {
    process.stderr.write(text);
  }

  printJson(value: unknown): void {
    this.out(stringifyJson(value));
  }

  close(): void {
    this.clientInstance?.close();
  }
}

/**
 * Makes a commander action from `fn(ctx, ...positionalArgs)`, which returns the exit status.
 * Any error thrown is printed as `hpcq: <reason>: <message>` (or JSON) and mapped to 1 or 2.
 */
export function action<A extends unknown[]>(fn: (ctx: CommandContext, opts: Record<string, unknown>, ...args: A) => Promise<number>) {
  return async (...actionArgs: unknown[]): Promise<void> => {
    const cmd = actionArgs[actionArgs.length - 1] as Command;
    const positional = actionArgs.slice(0, -2) as A;
    const opts = cmd.optsWithGlobals<GlobalOptions & Record<string, unknown>>();
    let ctx: CommandContext | undefined;
    try {
      ctx = new CommandContext(opts);
      process.exitCode = await fn(ctx, opts, ...positional);
    } catch (err) {
      const failure = describeError(err, { address: ctx?.address ?? opts.addr ?? '', timeoutMs: ctx?.timeoutMs });
      process.stderr.write(renderFailure(failure, opts.json === true));
      process.exitCode = failure.exitCode;
    } finally {
      ctx?.close();
    }
  };
}
