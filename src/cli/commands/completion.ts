/** `hpcq completion bash|zsh`: prints a completion script generated from the command tree. */
import { Argument, type Command } from 'commander';
import { bashCompletion, zshCompletion } from '../completion.js';

export function registerCompletion(program: Command): void {
  program
    .command('completion')
    .summary('print a shell completion script (bash, zsh)')
    .description('Print a completion script for the shell: commands, aliases, options and their choices, from this version of hpcq.')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .addHelpText(
      'after',
      `
Examples:
  source <(hpcq completion bash)                      in ~/.bashrc
  hpcq completion bash > /etc/bash_completion.d/hpcq  for every user
  source <(hpcq completion zsh)                       in ~/.zshrc, after compinit`,
    )
    .action((shell: string) => {
      process.stdout.write(shell === 'zsh' ? zshCompletion(program) : bashCompletion(program));
    });
}
