#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=4 --heap-growing-percent=30 --no-parallel-scavenge
// hpcqd entry point. The first line starts Node with the settings of process-tuning.ts (keep them
// in step). The thread-pool size is set here, not there: CommonJS on purpose, so it is set before
// Node first uses the pool, which loading an ES module already does (the size is fixed at first
// use); run as `node main.cjs` it is set the same.
process.env.UV_THREADPOOL_SIZE ??= '16';

import('./run-daemon.js')
  .then(({ runDaemon }) => runDaemon(process.argv.slice(2)))
  .catch((err: unknown) => {
    process.stderr.write(`hpcqd: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
