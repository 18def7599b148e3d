/**
 * The generated completion scripts (bash accepts them and completes commands, aliases, options and
 * argument choices; zsh too where it is installed) and the help of every command (each shows an
 * example). Both are read from the program tree, so a new command is covered without changes here.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { bashCompletion, zshCompletion } from '../../src/cli/completion.js';
import { buildProgram } from '../../src/cli/program.js';

const hasZsh = spawnSync('zsh', ['-c', 'true']).status === 0;

/** What the bash completion offers for the words typed (the last one is being completed). */
function bashComplete(script: string, words: readonly string[]): string[] {
  const quoted = words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
  const out = execFileSync('bash', ['--norc', '--noprofile', '-c', `${script}\nCOMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _hpcq_complete; printf '%s\\n' "\${COMPREPLY[@]}"`], {
    encoding: 'utf8',
    cwd: '/',
  });
  return out.split('\n').filter((l) => l !== '');
}

describe('hpcq completion', () => {
  const program = buildProgram();
  const bash = bashCompletion(program);

  it('prints a bash script bash accepts', () => {
    expect(spawnSync('bash', ['-n'], { input: bash }).status).toBe(0);
    expect(bash).toContain('complete -o default -F _hpcq_complete hpcq');
  });

  it('completes commands, aliases, subcommands, options and argument choices in bash', () => {
    expect(bashComplete(bash, ['hpcq', 'sq'])).toEqual(['squeue']);
    expect(bashComplete(bash, ['hpcq', 'sc'])).toEqual(['scancel', 'schedule']);
    expect(bashComplete(bash, ['hpcq', '--json', 'sac'])).toEqual(['sacct']);
    expect(bashComplete(bash, ['hpcq', 'squeue', '--st'])).toEqual(['--states']);
    expect(bashComplete(bash, ['hpcq', 'list', '-u', 'alice', '--m'])).toEqual(['--me']);
    expect(bashComplete(bash, ['hpcq', 'schedule', 'cr'])).toEqual(['create']);
    expect(bashComplete(bash, ['hpcq', 'completion', ''])).toEqual(['bash', 'zsh']);
    expect(bashComplete(bash, ['hpcq', 'scancel', '--sig'])).toEqual(['--signal']);
    // After an option that takes a value: file names (here, of /), not commands.
    expect(bashComplete(bash, ['hpcq', 'submit', '--stdout', 'tm'])).toEqual(['tmp']);
  });

  it.skipIf(!hasZsh)('prints a zsh script zsh accepts, completing commands with their summaries', () => {
    const zsh = zshCompletion(program);
    expect(spawnSync('zsh', ['-n'], { input: zsh }).status).toBe(0);
    // The completion system's builtins replaced by recorders of what they are given.
    const probe = `compdef() { :; }
${zsh}
_describe() { local arr=\${@[-1]}; print -l -- \${(P)arr}; }
compadd() { local arr=\${@[-1]}; print -l -- \${(P)arr}; }
_files() { print FILES; }
words=(hpcq sq); CURRENT=2; _hpcq | grep '^squeue:'
words=(hpcq squeue --st); CURRENT=3; _hpcq | grep '^--states:'
words=(hpcq completion ''); CURRENT=3; _hpcq`;
    const out = execFileSync('zsh', ['-f', '-c', probe], { encoding: 'utf8' }).trim().split('\n');
    expect(out[0]).toMatch(/^squeue:list jobs/);
    expect(out[1]).toMatch(/^--states:only these states/);
    expect(out.slice(2)).toEqual(['bash', 'zsh']);
  });
});

describe('help', () => {
  function helpOf(cmd: Command): string {
    let text = '';
    cmd.configureOutput({ writeOut: (s) => (text += s), writeErr: (s) => (text += s) });
    cmd.outputHelp();
    return text;
  }

  it('shows an example in hpcq --help and in the help of every command', () => {
    const program = buildProgram();
    const missing: string[] = [];
    const walk = (cmd: Command, path: string) => {
      if (!/Examples?:/.test(helpOf(cmd))) missing.push(path || '(hpcq)');
      for (const sub of cmd.commands) walk(sub, `${path} ${sub.name()}`.trim());
    };
    walk(program, '');
    expect(missing).toEqual([]);
  });

  it('documents the units of the Slurm-style and the EHPC flags', () => {
    const program = buildProgram();
    const submit = program.commands.find((c) => c.name() === 'submit')!;
    expect(helpOf(submit)).toMatch(/-t, --time 30\s+30 MINUTES/);
    expect(helpOf(submit)).toMatch(/--time-limit 30\s+30 SECONDS/);
    expect(helpOf(program)).toMatch(/-t 30 is 30 minutes/);
  });
});
