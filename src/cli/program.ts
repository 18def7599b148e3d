/** The `hpcq` command line: the program, its global options and every command. */
import { packageVersion } from './version.js';
import { Command } from 'commander';
import { registerAccess } from './commands/access.js';
import { registerCancel } from './commands/cancel.js';
import { registerCompletion } from './commands/completion.js';
import { registerHistory } from './commands/history.js';
import { registerHold } from './commands/hold.js';
import { registerDaemon } from './commands/daemon.js';
import { registerGroup } from './commands/group.js';
import { registerList } from './commands/list.js';
import { registerLogLevel } from './commands/log-level.js';
import { registerQueues, registerQueueState } from './commands/queues.js';
import { registerSchedule } from './commands/schedule.js';
import { registerStatus } from './commands/status.js';
import { registerSubmit } from './commands/submit.js';
import { registerWatch } from './commands/watch.js';
import { addGlobalOptions } from './context.js';
import { addHelpExamples } from './help-examples.js';


const HELP_AFTER = `
Address: --addr, else $HPCQ_ADDR, else the node's daemon at unix:/run/hpcq/hpcqd.sock (every
user may connect; the daemon knows you by your uid). A user without it but with a personal
daemon reaches unix:$XDG_STATE_HOME/hpcq/hpcqd.sock. A host:port address is spoken to over TLS:
--tls-ca, --tls-cert, --tls-key (or $HPCQ_TLS_CA, $HPCQ_TLS_CERT, $HPCQ_TLS_KEY) and a token
from \`hpcq token create\` in $HPCQ_TOKEN.

--json prints the API response as JSON with the proto field names in snake_case (job_id,
hpcjob_uuid, exit_code), every field present (defaults included), enums by name
(JOB_STATE_RUNNING) and 64-bit integers as numbers. watch --json prints JSON Lines.
Errors go to stderr as "hpcq: <reason>: <message>", or with --json as one JSON object
{code, status, reason, field, message}.

Exit status: 0 success; 2 a client error (bad argument, unknown job or queue, wrong state,
usage mistake); 1 anything else (daemon unreachable, internal error). submit --wait and
watch --exit-code exit with the job's exit status instead.

Slurm habits: squeue, sacct, scancel and sinfo are aliases of list, history, cancel and
queues, with Slurm's short flags; submit takes sbatch's (-J -t -p -c --mem -D -d -a -H) and
#SBATCH scripts. Slurm-style flags use Slurm's units (-t 30 is 30 minutes); the long EHPC
flags keep the API's (--time-limit 30 is 30 seconds).

Examples:
  hpcq submit -J sim -t 30 -- ./sim.sh     a job with 30 minutes of wall time
  hpcq squeue --me                         your pending and running jobs
  hpcq sacct -S now-1day                   what ended in the last day
  hpcq scancel --me -t PENDING             cancel your pending jobs
  hpcq <command> --help                    each command's flags and examples
  source <(hpcq completion bash)           completion for bash (zsh too)`;

/** Builds the program. Commander errors are thrown (exitOverride), not exited on. */
export function buildProgram(): Command {
  const program = new Command('hpcq')
    .description('Client of the hpcqd HPC job queue daemon (gRPC API hpcq.v1).')
    .version(packageVersion(), '-V, --version')
    .enablePositionalOptions()
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .addHelpText('after', HELP_AFTER);
  addGlobalOptions(program);
  registerSubmit(program);
  registerStatus(program);
  registerList(program);
  registerHistory(program);
  registerCancel(program);
  registerHold(program);
  registerWatch(program);
  registerGroup(program);
  registerSchedule(program);
  registerQueues(program);
  registerQueueState(program);
  registerAccess(program);
  registerLogLevel(program);
  registerDaemon(program);
  registerCompletion(program);
  addHelpExamples(program);
  return program;
}
