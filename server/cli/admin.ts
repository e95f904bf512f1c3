// Operator commands on the AdminService: apps, resource servers, signing keys.

import type { Command } from "commander";
import { type App, type ApprovalRule, type SigningKey, signingKeyStateToJSON } from "../gen/baton/v1/admin.js";
import { APPROVAL_RULE_HELP, approvalRule, formatRule } from "./approvals.js";
import { adminClient, call, integer, printList, printOne, repeated, type Row } from "./common.js";

const U32 = 4_294_967_295;

const appRow = (a: App | undefined): Row => ({
  app_id: a?.appId,
  name: a?.name,
  disabled: a?.disabled,
  scope_ceiling: a?.scopeCeiling,
  audiences: a?.audiences,
});

/** Everything an operator may want to see of one app; never its secret (the broker keeps only a hash). */
const appDetail = (a: App | undefined): Row => ({
  ...appRow(a),
  max_ttl_seconds: a?.maxTtl ? Number(a.maxTtl.seconds) : null,
  max_delegation_depth: a?.maxDelegationDepth,
  rate_limit_per_second: a?.rateLimitPerSecond,
  rate_limit_burst: a?.rateLimitBurst,
  approval_policy: a?.approvalPolicy.map(formatRule),
  // null: the broker's default (BATON_MAX_TASK_SECONDS).
  max_task_seconds: a?.maxTaskLifetime ? Number(a.maxTaskLifetime.seconds) : null,
  create_time: a?.createTime?.toISOString(),
  update_time: a?.updateTime?.toISOString(),
});

const keyRow = (k: SigningKey): Row => ({
  key_id: k.keyId,
  algorithm: k.algorithm,
  state: signingKeyStateToJSON(k.state).replace("SIGNING_KEY_STATE_", ""),
  create_time: k.createTime?.toISOString(),
  activate_time: k.activateTime?.toISOString() ?? null,
  retire_time: k.retireTime?.toISOString() ?? null,
});

/** The limits an app is created or updated with: --max-ttl, --max-depth, --rate-limit, --burst. */
interface LimitFlags {
  maxTtl?: number;
  maxDepth?: number;
  rateLimit?: number;
  burst?: number;
  approvalRule?: ApprovalRule[];
  maxTaskSeconds?: number;
}

const withLimitOptions = (cmd: Command): Command =>
  cmd
    .option("--max-ttl <seconds>", "longest token lifetime", integer(1))
    .option("--max-depth <n>", "deepest delegation", integer(0, U32))
    .option("--rate-limit <per-second>", "requests per second per replica (0: the broker's default)", integer(0, U32))
    .option("--burst <n>", "rate limit burst (0: the broker's default)", integer(0, U32))
    .option("--approval-rule <rule>", APPROVAL_RULE_HELP, approvalRule)
    .option("--max-task-seconds <seconds>", "how long a task may keep renewing its tokens (up to 30 days)", integer(1, 2_592_000));

export function addAdminCommands(program: Command): void {
  const app = program.command("app").description("manage apps (the operator credential)");

  withLimitOptions(app
    .command("create")
    .description("create an app; prints its client secret, once")
    .requiredOption("--name <name>", "unique name")
    .option("--scope <scope>", "scope ceiling entry (repeat)", repeated)
    .option("--audience <audience>", "audience the app may issue for (repeat)", repeated)
  )
    .action(async (o: { name: string; scope?: string[]; audience?: string[] } & LimitFlags, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.createApp.bind(client), {
        name: o.name,
        scopeCeiling: o.scope ?? [],
        audiences: o.audience ?? [],
        maxTtl: o.maxTtl !== undefined ? { seconds: o.maxTtl, nanos: 0 } : undefined,
        maxDelegationDepth: o.maxDepth ?? 0,
        rateLimitPerSecond: o.rateLimit,
        rateLimitBurst: o.burst,
        approvalPolicy: o.approvalRule ?? [],
        maxTaskLifetime: o.maxTaskSeconds !== undefined ? { seconds: o.maxTaskSeconds, nanos: 0 } : undefined,
      }, md);
      printOne(cmd, { app_id: res.app?.appId, client_secret: res.clientSecret, note: "the client secret is shown only now" });
    });

  app
    .command("get")
    .description("show one app")
    .argument("<app-id>")
    .action(async (appId: string, _o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.getApp.bind(client), { appId }, md);
      printOne(cmd, appDetail(res.app));
    });

  app
    .command("list")
    .description("list the apps")
    .action(async (_o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const rows: Row[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listApps.bind(client), { pageSize: 100, pageToken }, md);
        rows.push(...res.apps.map(appRow));
        pageToken = res.nextPageToken;
      } while (pageToken);
      printList(cmd, rows);
    });

  withLimitOptions(app
    .command("update")
    .description("change an app; flags not given are left as they are (a narrower ceiling or audience list revokes the tokens that no longer fit)")
    .argument("<app-id>")
    .option("--name <name>", "new name")
    .option("--scope <scope>", "replace the scope ceiling (repeat)", repeated)
    .option("--audience <audience>", "replace the audiences (repeat)", repeated)
    .option("--clear-approval-policy", "remove every approval rule (--approval-rule replaces them)")
  )
    .action(async (appId: string, o: { name?: string; scope?: string[]; audience?: string[]; clearApprovalPolicy?: boolean } & LimitFlags, cmd: Command) => {
      if (o.clearApprovalPolicy && o.approvalRule) {
        cmd.error("error: option '--clear-approval-policy' cannot be used with '--approval-rule'", { exitCode: 2, code: "baton.policyConflict" });
      }
      const { client, md } = adminClient(cmd);
      const res = await call(client.updateApp.bind(client), {
        appId,
        name: o.name,
        updateScopeCeiling: o.scope !== undefined,
        scopeCeiling: o.scope ?? [],
        updateAudiences: o.audience !== undefined,
        audiences: o.audience ?? [],
        maxTtl: o.maxTtl !== undefined ? { seconds: o.maxTtl, nanos: 0 } : undefined,
        maxDelegationDepth: o.maxDepth,
        rateLimitPerSecond: o.rateLimit,
        rateLimitBurst: o.burst,
        approvalPolicy: o.approvalRule ?? [], updateApprovalPolicy: o.approvalRule !== undefined || o.clearApprovalPolicy === true,
        maxTaskLifetime: o.maxTaskSeconds !== undefined ? { seconds: o.maxTaskSeconds, nanos: 0 } : undefined,
      }, md);
      printOne(cmd, { ...appDetail(res.app), revoked_token_count: res.revokedTokenCount });
    });

  app
    .command("disable")
    .description("disable an app and revoke its tokens")
    .argument("<app-id>")
    .option("--reason <text>", "why, for the audit trail")
    .action(async (appId: string, o: { reason?: string }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.disableApp.bind(client), { appId, reason: o.reason ?? "" }, md);
      printOne(cmd, { app_id: res.app?.appId, disabled: res.app?.disabled });
    });

  app
    .command("rotate-secret")
    .description("replace an app's client secret; prints the new one, once")
    .argument("<app-id>")
    .action(async (appId: string, _o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.rotateAppSecret.bind(client), { appId }, md);
      printOne(cmd, { app_id: appId, client_secret: res.clientSecret, note: "the client secret is shown only now" });
    });

  const rs = program.command("rs").description("manage resource servers (the operator credential)");

  rs
    .command("create")
    .description("create a resource server; prints its client secret, once")
    .requiredOption("--name <name>", "unique name")
    .option("--audience <audience>", "audience it validates for (repeat)", repeated)
    .action(async (o: { name: string; audience?: string[] }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.createResourceServer.bind(client), { name: o.name, audiences: o.audience ?? [] }, md);
      printOne(cmd, {
        resource_server_id: res.resourceServer?.resourceServerId,
        client_secret: res.clientSecret,
        audiences: res.resourceServer?.audiences,
        note: "the client secret is shown only now",
      });
    });

  rs
    .command("list")
    .description("list the resource servers")
    .action(async (_o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const rows: Row[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listResourceServers.bind(client), { pageSize: 100, pageToken }, md);
        rows.push(...res.resourceServers.map((r) => ({ resource_server_id: r.resourceServerId, name: r.name, disabled: r.disabled, audiences: r.audiences })));
        pageToken = res.nextPageToken;
      } while (pageToken);
      printList(cmd, rows);
    });

  rs
    .command("disable")
    .description("disable a resource server and end its revocation streams")
    .argument("<rs-id>")
    .option("--reason <text>", "why, for the audit trail")
    .action(async (resourceServerId: string, o: { reason?: string }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.disableResourceServer.bind(client), { resourceServerId, reason: o.reason ?? "" }, md);
      printOne(cmd, { resource_server_id: res.resourceServer?.resourceServerId, disabled: res.resourceServer?.disabled });
    });

  const key = program.command("key").description("signing keys (the operator credential)");

  key
    .command("list")
    .description("list the signing keys, newest first")
    .action(async (_o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.listSigningKeys.bind(client), {}, md);
      printList(cmd, res.keys.map(keyRow));
    });

  key
    .command("rotate")
    .description("activate the next signing key and publish a new next one")
    .action(async (_o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.rotateSigningKey.bind(client), {}, md);
      printOne(cmd, { active_key_id: res.active?.keyId, next_key_id: res.next?.keyId });
    });
}
