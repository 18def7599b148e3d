/** `hpcq whoami`, `hpcq token create` and `hpcq reconfigure`: the caller's identity, tokens, reload. */
import type { Command } from 'commander';
import { CreateTokenResponse, ReconfigureResponse, WhoAmIResponse } from '../../gen/hpcq/v1/access_service.js';
import { action, addGlobalOptions, optionParser } from '../context.js';
import { parseDuration } from '../format.js';
import { protoJson } from '../proto-json.js';

export function registerAccess(program: Command): void {
  const whoami = program
    .command('whoami')
    .summary('show who the daemon takes you for and what you may do')
    .description('Print the principal the daemon sees (from the kernel on the unix socket, the certificate or token over TLS), its account and groups, whether it is an admin, the accounts it may submit as, and the queues it may use.');
  addGlobalOptions(whoami);
  whoami.action(
    action(async (ctx) => {
      const me = await ctx.client.whoAmI();
      if (ctx.json) {
        ctx.printJson(protoJson(WhoAmIResponse, me));
        return 0;
      }
      const rows: [string, string][] = [
        ['Principal', me.principal],
        ['Authenticated by', me.authenticatedBy],
        ['User', me.user ? `${me.user} (uid ${me.uid}, gid ${me.gid})` : '-'],
        ['Groups', me.groups.join(', ') || '-'],
        ['Admin', me.admin ? 'yes: sees and acts on every job' : 'no'],
        ['May submit as', me.admin ? 'any allowed account' : [me.user, ...me.runUsers].filter(Boolean).join(', ') || '-'],
        ['Sees', me.admin || me.jobVisibility === 'all' ? 'every job' : 'its own jobs'],
        ['Usable queues', me.usableQueues.join(', ') || '-'],
        ['Connection', me.peer],
      ];
      ctx.out(rows.map(([k, v]) => `${`${k}:`.padEnd(18)}${v}\n`).join(''));
      return 0;
    }),
  );

  const token = program.command('token').summary('tokens for programs that call hpcqd over TLS');
  const create = token
    .command('create')
    .summary('create a signed token (like scontrol token)')
    .description(
      'Print a token that acts as your account (or, for an admin, as --user) when sent over TLS as\n' +
        '"authorization: Bearer <token>" (the CLI reads it from $HPCQ_TOKEN). Rotating the\n' +
        "daemon's signing key (delete <state_dir>/token-signing-key.pem and reload) revokes every token.",
    )
    .option('--user <name>', 'the account the token acts as (admins only; default: yours)')
    .option('--lifespan <duration>', 'validity: seconds, or 1h / 2d / 30m (default 1h, at most 30d)', optionParser(parseDuration));
  addGlobalOptions(create);
  create.action(
    action(async (ctx, opts) => {
      const res = await ctx.client.createToken((opts.user as string | undefined) ?? '', (opts.lifespan as number | undefined) ?? 0);
      if (ctx.json) ctx.printJson(protoJson(CreateTokenResponse, res));
      else {
        ctx.out(`${res.token}\n`);
        ctx.err(`hpcq: token for ${res.user}, valid until ${res.expiresAt}; use it as HPCQ_TOKEN\n`);
      }
      return 0;
    }),
  );

  const reconfigure = program
    .command('reconfigure')
    .summary('make the daemon reread its configuration (admins; like SIGHUP)')
    .description('Reread the configuration file: access policy, queue limits, new queues, TLS certificate. A file with errors changes nothing. Settings that need a restart are listed.');
  addGlobalOptions(reconfigure);
  reconfigure.action(
    action(async (ctx) => {
      const res = await ctx.client.reconfigure();
      if (ctx.json) ctx.printJson(protoJson(ReconfigureResponse, res));
      else {
        ctx.out('configuration reloaded\n');
        if (res.restartRequired.length > 0) ctx.err(`hpcq: changed, but applied only after a restart of hpcqd: ${res.restartRequired.join(', ')}\n`);
      }
      return 0;
    }),
  );
}
