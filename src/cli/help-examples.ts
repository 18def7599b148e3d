/**
 * Examples for the help of the commands whose modules do not write their own (submit, schedule
 * and completion do): one table, applied to the program tree after every command is registered,
 * keyed by the command's path. A unit test walks the tree and checks that every command's help
 * shows an example, so a new command without one fails it.
 */
import type { Command } from 'commander';

const EXAMPLES: Record<string, string> = {
  status: `  hpcq status 12                      one job: state, reason, limits, usage
  hpcq status hpcjob-0a1b2c3d --json  by uuid, as the GetJobResponse`,
  list: `  hpcq squeue                         your pending and running jobs
  hpcq squeue --me -t PD              your pending jobs, with their reasons
  hpcq squeue -u alice,bob -p debug   their jobs in the debug queue
  hpcq squeue -t all -j 12,13         these jobs, whatever their state
  hpcq squeue -h -o "%.8i %.9P %.12j %.8u %.2t %.10M %.10l %R"    no header`,
  history: `  hpcq sacct                          jobs that ended since midnight
  hpcq sacct -S now-2hours -s F,TO,OOM   what failed in the last two hours
  hpcq sacct -S 2026-03-01 -E 2026-03-02 -u alice -o JobID,JobName%30,State
  hpcq sacct -j 12 -P -n -o State,ExitCode   one job's end, for a script`,
  cancel: `  hpcq scancel 12 13                  in one request: 13 cannot start meanwhile
  hpcq scancel --me -t PENDING        every pending job of yours
  hpcq scancel -u alice -n sweep -p debug   alice's sweep jobs in debug
  hpcq scancel --signal TERM 12       SIGTERM now, SIGKILL after the kill grace`,
  hold: `  hpcq hold 12 13                     keep them from starting
  hpcq hold 40                        every pending instance of array job 40`,
  release: `  hpcq release 12 13                  let them start again`,
  watch: `  hpcq watch 12                       one line per state change until it ends
  hpcq watch 12 --history --exit-code  from submission; exit with the job's status`,
  group: `  hpcq group submit pipeline.yaml
  hpcq group status group-12`,
  'group/status': `  hpcq group status group-12          each task's job and the group's counts`,
  schedule: `  hpcq schedule create --name nightly --cron '0 2 * * *' -- ./backup.sh
  hpcq schedule list
  hpcq schedule watch sched-3         each tick and its job as it happens`,
  queues: `  hpcq sinfo                          queues, limits and counts, then the node
  hpcq sinfo -N                       node-oriented, as sinfo -N
  hpcq sinfo -p debug --json          one queue, as the ListQueuesResponse`,
  queue: `  hpcq queue drain hpcq-debug         take no new jobs, run the queued ones
  hpcq queue resume hpcq-debug`,
  'queue/drain': `  hpcq queue drain hpcq-debug`,
  'queue/stop': `  hpcq queue stop hpcq-debug          start nothing until resumed`,
  'queue/resume': `  hpcq queue resume hpcq-debug`,
  whoami: `  hpcq whoami                         who the daemon takes you for
  HPCQ_TOKEN=... hpcq --addr node1:7443 --tls-ca ca.pem whoami   over TLS`,
  token: `  hpcq token create --lifespan 7d`,
  'token/create': `  export HPCQ_TOKEN=$(hpcq token create --lifespan 7d)
  hpcq token create --user alice      an admin, for alice's programs`,
  reconfigure: `  hpcq reconfigure                    after editing the configuration file`,
  'log-level': `  hpcq log-level debug                one line per dispatch pass from now on
  hpcq log-level                      print the current level`,
  daemon: `  hpcq daemon --config /etc/hpcq/hpcqd.yaml
  hpcq daemon --check                 validate the configuration and exit`,
};

/** Adds the table's example to each command it names (`group/status` is `hpcq group status`). */
export function addHelpExamples(program: Command): void {
  const walk = (cmd: Command, path: string) => {
    const example = EXAMPLES[path];
    if (example !== undefined) cmd.addHelpText('after', `\nExamples:\n${example}`);
    for (const sub of cmd.commands) walk(sub, path ? `${path}/${sub.name()}` : sub.name());
  };
  for (const sub of program.commands) walk(sub, sub.name());
}
