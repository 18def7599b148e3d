#!/usr/bin/env node
// hpcq: the command-line client of hpcqd. See program.ts for the commands.
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

// `hpcq list | head`: a closed pipe ends the output quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; every usage mistake exits 2.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    throw err;
  }
  if (program.args[0] !== 'daemon') {
    // A client command is done: nothing should keep the process alive now (gRPC channels are
    // closed), but never hang on a stray handle.
    setTimeout(() => process.exit(), 2_000).unref();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`hpcq: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
