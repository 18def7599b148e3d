/**
 * loadConfig in a worker thread that ends once it has answered. The YAML parser, zod and the
 * compiled schema (about 4.7 MiB of heap) then never enter the daemon's heap, where a module once
 * loaded stays for the life of the process and, through V8's growth of the old generation, raises
 * every later peak. Same result and the same ConfigError as loadConfig; costs a thread start
 * (tens of ms) per load: at start and at each reload.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import { ConfigError } from './config-error.js';
import type { DaemonConfig } from './daemon-config.js';
import type { ConfigOverrides, HostFacts } from './load-config.js';

export interface ConfigRequest {
  env: NodeJS.ProcessEnv;
  flags: ConfigOverrides;
  host: HostFacts;
}

export type ConfigAnswer = { config: DaemonConfig } | { invalid: { source: string; problems: readonly string[] } };

/** The compiled worker (dist/), also when this module runs from src/ under the tests. */
const WORKER_MAIN = () => join(packageRoot(), 'dist', 'config', 'config-worker.js');

export function loadConfigOffThread(env: NodeJS.ProcessEnv, flags: ConfigOverrides, host: HostFacts): Promise<DaemonConfig> {
  const request: ConfigRequest = { env: { ...env }, flags: { ...flags }, host: { ...host } };
  return new Promise((resolve, reject) => {
    let answer: ConfigAnswer | undefined;
    const worker = new Worker(WORKER_MAIN(), { workerData: request });
    worker.once('message', (message: ConfigAnswer) => (answer = message));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (!answer) return reject(new Error(`the configuration worker exited (${code}) without an answer`));
      if ('invalid' in answer) return reject(new ConfigError(answer.invalid.source, answer.invalid.problems));
      resolve(deepFreeze(answer.config));
    });
  });
}

/** The worker's configuration is frozen; its structured clone is not. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
