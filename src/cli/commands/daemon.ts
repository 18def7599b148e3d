/** `hpcq daemon`: runs hpcqd in this process, with hpcqd's own flags. */
import type { Command } from 'commander';

export function registerDaemon(program: Command): void {
  program
    .command('daemon')
    .summary('run the hpcqd daemon in this process')
    .description('Run hpcqd in this process. Every argument after "daemon" is passed to hpcqd (try: hpcq daemon --help).')
    .argument('[hpcqd-args...]', 'hpcqd flags: --config, --state-dir, --listen, --check, --help')
    .helpOption(false)
    .allowUnknownOption()
    .passThroughOptions()
    .action(async (args: string[]) => {
      // Loaded only here: the client commands never pay for the daemon's modules.
      const { runDaemon } = await import('../../daemon/run-daemon.js');
      await runDaemon(args);
    });
}
