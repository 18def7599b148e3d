/**
 * Thrown when the configuration is invalid; `problems` lists every one found, each
 * `file:line:col: key.path: message` when the file has the key, else `key.path: message`.
 * A module of its own: the daemon catches it without loading the parsers of load-config.ts.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid configuration (${source}):\n  - ${problems.join('\n  - ')}`);
  }
}
