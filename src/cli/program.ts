/** The `hpcq` command line: the program, its global options and every command. */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerAccess } from './commands/access.js';
import { registerCancel } from './commands/cancel.js';
import { registerHold } from './commands/hold.js';
import { registerDaemon } from './commands/daemon.js';
import { registerGroup } from './commands/group.js';
import { registerList } from './commands/list.js';
import { registerQueues, registerQueueState } from './commands/queues.js';
import { registerStatus } from './commands/status.js';
import { registerSubmit } from './commands/submit.js';
import { registerWatch } from './commands/watch.js';
import { addGlobalOptions } from './context.js';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

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
watch --exit-code exit with the job's exit status instead.`;

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
  registerCancel(program);
  registerHold(program);
  registerWatch(program);
  registerGroup(program);
  registerQueues(program);
  registerQueueState(program);
  registerAccess(program);
  registerDaemon(program);
  return program;
}
