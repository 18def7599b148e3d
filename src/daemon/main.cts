#!/usr/bin/env -S MALLOC_ARENA_MAX=2 UV_THREADPOOL_SIZE=16 node --max-semi-space-size=4 --heap-growing-percent=30
// hpcqd entry point. The first line starts Node with the settings of process-tuning.ts (keep them
// in step). CommonJS on purpose: run as `node main.cjs`, without those settings, it still sets the
// thread-pool size before Node uses the pool, and loading an ES module already does (the size is
// fixed at first use).
process.env.UV_THREADPOOL_SIZE ??= '16';

import('./run-daemon.js')
  .then(({ runDaemon }) => runDaemon(process.argv.slice(2)))
  .catch((err: unknown) => {
    process.stderr.write(`hpcqd: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
