/**
 * Worker thread of load-config-off-thread.ts: loads the configuration once, posts the result (or
 * the ConfigError's source and problems) and ends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ConfigRequest, ConfigAnswer } from './load-config-off-thread.js';
import { ConfigError, loadConfig } from './load-config.js';

const { env, flags, host } = workerData as ConfigRequest;
let answer: ConfigAnswer;
try {
  answer = { config: loadConfig(env, flags, host) };
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  answer = { invalid: { source: err.source, problems: err.problems } };
}
parentPort?.postMessage(answer);
