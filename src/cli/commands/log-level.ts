/** `hpcq log-level [level]`: show or change the daemon's log level while it runs (admins; like SIGUSR2). */
import type { Command } from 'commander';
import { SetLogLevelResponse } from '../../gen/hpcq/v1/access_service.js';
import { LOG_LEVELS } from '../../observability/log-level.js';
import { action, addGlobalOptions } from '../context.js';
import { protoJson } from '../proto-json.js';

export function registerLogLevel(program: Command): void {
  const cmd = program
    .command('log-level')
    .summary("show or change the daemon's log level (admins; SIGUSR2 toggles debug)")
    .description(
      `Set hpcqd's log level at once, without a restart: one of ${LOG_LEVELS.join(', ')}. debug adds a line per ` +
        'dispatch pass. The level lasts until the next change or a restart. Without a level, print the current one.',
    )
    .argument('[level]', LOG_LEVELS.join(' | '));
  addGlobalOptions(cmd);
  cmd.action(
    action(async (ctx, _opts, level?: string) => {
      const res = await ctx.client.setLogLevel(level ?? '');
      if (ctx.json) ctx.printJson(protoJson(SetLogLevelResponse, res));
      else ctx.out(res.level === res.previous ? `log level: ${res.level}\n` : `log level: ${res.level} (was ${res.previous})\n`);
      return 0;
    }),
  );
}
