/**
 * The cgroup v2 tests on a real cgroup v2 kernel, whatever this host's cgroup layout: boots a VM
 * with only cgroup v2 (scripts/cgroup2-vm.sh; it installs what it needs on first use) and runs the
 * cgroup test files inside it. They run there as root with the test accounts, on this checkout's
 * build, with HPCQ_TEST_REQUIRE_PRIVILEGED=1: in the VM nothing they need may be missing, so a
 * skip in there would hide a failure.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PACKAGE_ROOT } from '../support/daemon-harness.js';
import { isRoot, need } from '../support/privileged.js';

const SCRIPT = join(PACKAGE_ROOT, 'scripts', 'cgroup2-vm.sh');

/**
 * Run in the VM: the cgroup v2 file, and the limits through the daemon in the host's cgroup mode
 * (cgroup2 in there). Not this file (no VM in the VM), and nothing that needs cgroup v1 or Slurm.
 * Few files, one at a time: where the VM is emulated, each daemon start costs seconds.
 */
const IN_VM = ['test/integration/limits-cgroup2.test.ts', 'test/integration/limits-daemon-cgroup.test.ts'];

interface Run {
  status: number | null;
  output: string;
  seconds: number;
}

function runScript(args: string[]): Promise<Run> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, args, {
      cwd: PACKAGE_ROOT,
      // The script's own time limit ends a hung VM, with its console, before this test's does.
      env: { ...process.env, HPCQ_TEST_REQUIRE_PRIVILEGED: '1', HPCQ_VM_TIMEOUT: '780' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    // Plain text whatever the run's colour settings (a CI variable turns vitest's colours on).
    child.on('close', (status) =>
      resolve({ status, output: stripVTControlCharacters(output), seconds: (Date.now() - started) / 1000 }),
    );
  });
}

/** The end of a run's output, for a failure message: which tests failed and why. */
const tail = (output: string) => output.slice(-12_000);

describe('cgroup v2 in a VM', () => {
  it('the cgroup test files pass on a kernel with only cgroup v2', { timeout: 15 * 60_000 }, async (ctx) => {
    if (!need(isRoot && existsSync('/dev/kvm'), '/dev/kvm and root for the cgroup v2 VM')) return ctx.skip();
    const ensure = await runScript(['ensure']);
    expect(ensure.status, `cgroup2-vm.sh ensure failed:\n${tail(ensure.output)}`).toBe(0);

    // A test's own time limit is for a hang, not for speed: an emulated VM needs a wider one.
    const vitest = [join(PACKAGE_ROOT, 'node_modules', '.bin', 'vitest'), 'run', '--testTimeout=300000', '--hookTimeout=300000'];
    let vm = await runScript(['run', '--', ...vitest, ...IN_VM]);
    // Node itself crashing under the emulator (seen once: SIGSEGV before any test had run) is the
    // emulator's fault, not a test's: one more boot. A test that failed is never run again.
    if (vm.status !== null && vm.status >= 128 && !/Test Files/.test(vm.output)) {
      console.log(`[cgroup2-vm] the command died with status ${vm.status} before any test ran; booting once more`);
      vm = await runScript(['run', '--', ...vitest, ...IN_VM]);
    }
    expect(vm.status, `the cgroup v2 tests failed in the VM:\n${tail(vm.output)}`).toBe(0);
    // Every test ran: none skipped, none left out.
    const summary = /Tests\s+(\d+) passed \((\d+)\)/.exec(vm.output);
    expect(summary, `no test summary in the VM's output:\n${tail(vm.output)}`).not.toBeNull();
    expect(Number(summary![1])).toBe(Number(summary![2]));
    expect(vm.output).toMatch(new RegExp(`Test Files\\s+${IN_VM.length} passed \\(${IN_VM.length}\\)`));
    const boot = /booted in ([\d.]+) s/.exec(vm.output)?.[1];
    const suite = /Duration\s+([\d.]+)s/.exec(vm.output)?.[1];
    console.log(`[cgroup2-vm] ensure ${ensure.seconds.toFixed(1)} s; VM run ${vm.seconds.toFixed(1)} s (kernel boot ${boot} s, suite ${suite} s, ${summary![1]} tests)`);
  });
});
