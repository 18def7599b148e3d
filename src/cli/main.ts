#!/usr/bin/env node
// hpcq: the command-line client of hpcqd. See program.ts for the commands.
//
// Start-up time: the commands' modules load gRPC and the generated protobuf code, about two thirds
// of the start-up. `hpcq --version` (what scripts and installers call) is answered before any of
// that is loaded; everything else loads the program on demand, as before.
import { packageVersion } from './version.js';

// `hpcq list | head`: a closed pipe ends the output quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

/** `hpcq --version` / `hpcq -V` alone: printed as commander prints it (program.ts declares the option). */
function isVersionOnly(argv: readonly string[]): boolean {
  return argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V');
}


async function main(argv: readonly string[]): Promise<void> {
  if (isVersionOnly(argv)) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  const [{ CommanderError }, { buildProgram }] = await Promise.all([import('commander'), import('./program.js')]);
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
