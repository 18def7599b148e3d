/** hpcq.v1.AccessService: who the caller is, tokens for remote programs, configuration reload, log level. */
import type { TokenAuthority } from '../access/token-authority.js';
import type { DaemonConfig } from '../config/daemon-config.js';
import { assertRunnableAccount, isAdmin, queueAllows, ruleOf, type Principal } from '../core/access-policy.js';
import { HpcqError, invalidParameter } from '../core/errors.js';
import type { UserDirectory } from '../core/ports.js';
import type {
  AccessServiceServer,
  CreateTokenRequest,
  CreateTokenResponse,
  ReconfigureRequest,
  ReconfigureResponse,
  SetLogLevelRequest,
  SetLogLevelResponse,
  WhoAmIRequest,
  WhoAmIResponse,
} from '../gen/hpcq/v1/access_service.js';
import { isLogLevel, LOG_LEVELS, type LogLevel } from '../observability/log-level.js';
import { unary, type HandlerContext } from './handlers.js';

/** A token's validity when the request names none, seconds. */
const DEFAULT_TOKEN_LIFESPAN_SECONDS = 3600;

export interface AccessServiceDeps {
  config: () => DaemonConfig;
  daemonUid: number;
  users: UserDirectory;
  tokens: TokenAuthority;
  /** Rereads the configuration; resolves with the settings that need a restart, throws if the file is invalid. */
  reconfigure: () => Promise<string[]>;
  /** The daemon's log level now, and a way to change it. */
  logLevel: { readonly level: string; set(level: LogLevel): { level: string; previous: string } };
}

export function createAccessService(deps: AccessServiceDeps, ctx: HandlerContext): AccessServiceServer {
  const accessContext = () => ({ access: deps.config().access, daemonUid: deps.daemonUid });
  const requireAdmin = (principal: Principal, what: string) => {
    if (!isAdmin(principal, accessContext())) throw new HpcqError('OperationDenied.AdminRequired', 'permission', `${what} needs an admin; ${principal.name} is not one`);
  };
  return {
    whoAmI: unary<WhoAmIRequest, WhoAmIResponse>(ctx, { method: 'WhoAmI' }, async (_req, principal) => {
      const config = deps.config();
      const account = principal.account;
      const rule = ruleOf(principal, config.access);
      return {
        principal: principal.name,
        authenticatedBy: principal.via,
        user: account?.name ?? '',
        uid: account?.uid ?? -1,
        gid: account?.gid ?? -1,
        groups: account?.groups.map((g) => g.name) ?? [],
        admin: isAdmin(principal, accessContext()),
        runUsers: [...(rule?.runUsers ?? [])],
        jobVisibility: config.access.jobVisibility,
        usableQueues: account ? config.clusters.flatMap((c) => c.queues.filter((q) => queueAllows(q, account)).map((q) => q.hpcqueueId)) : [],
        peer: principal.peer,
      };
    }),
    createToken: unary<CreateTokenRequest, CreateTokenResponse>(
      ctx,
      { method: 'CreateToken', mutating: true, auditDetails: (req, res) => ({ runUser: res?.user ?? req.user }) },
      async (req, principal) => {
        // A token cannot mint tokens: its holder could otherwise extend it for ever.
        if (principal.via === 'token') throw new HpcqError('OperationDenied.TokenFromToken', 'permission', 'a token cannot be used to create tokens');
        const lifespanSeconds = req.lifespanSeconds || DEFAULT_TOKEN_LIFESPAN_SECONDS;
        if (lifespanSeconds < 0) throw invalidParameter('InvalidParameterValue.Negative', 'lifespan_seconds', 'lifespan_seconds must not be negative');
        let account = principal.account;
        if (req.user !== '' && req.user !== account?.name) {
          requireAdmin(principal, 'a token for another account');
          account = await deps.users.lookup(req.user);
          if (!account) throw invalidParameter('InvalidParameter.RunUserNotFound', 'user', `user ${req.user.slice(0, 32)} is not an account on this node`);
        }
        if (!account) throw invalidParameter('MissingParameter.User', 'user', `${principal.name} is not a local account; name the user`);
        // Tokens are for accounts jobs may run as: never root or a system account.
        assertRunnableAccount(account, accessContext());
        const minted = await deps.tokens.mint({ user: account.name, uid: account.uid, lifespanSeconds, issuedBy: principal.name });
        return { token: minted.token, user: account.name, expiresAt: new Date(minted.expiresAtMs).toISOString() };
      },
    ),
    reconfigure: unary<ReconfigureRequest, ReconfigureResponse>(ctx, { method: 'Reconfigure', mutating: true }, async (_req, principal) => {
      requireAdmin(principal, 'Reconfigure');
      return { restartRequired: await deps.reconfigure() };
    }),
    setLogLevel: unary<SetLogLevelRequest, SetLogLevelResponse>(ctx, { method: 'SetLogLevel', mutating: true }, async (req, principal) => {
      requireAdmin(principal, 'SetLogLevel');
      if (req.level === '') return { level: deps.logLevel.level, previous: deps.logLevel.level };
      if (!isLogLevel(req.level)) throw invalidParameter('InvalidParameterValue.LogLevel', 'level', `level must be one of ${LOG_LEVELS.join(', ')}`);
      return deps.logLevel.set(req.level);
    }),
  };
}
