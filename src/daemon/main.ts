#!/usr/bin/env node
// hpcqd entry point.
import { runDaemon } from './run-daemon.js';

runDaemon(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`hpcqd: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
