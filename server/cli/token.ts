// Token commands on the BrokerService: issue (as an app), validate and
// revoke (as an app, or as the operator, who may revoke anything).

import { type Command, Option } from "commander";
import { RevocationTarget, tokenStatusToJSON } from "../gen/baton/v1/broker.js";
import { brokerClient, call, hasAppCredentials, integer, printOne, repeated } from "./common.js";

const TARGETS = {
  token: RevocationTarget.REVOCATION_TARGET_TOKEN,
  agent: RevocationTarget.REVOCATION_TARGET_AGENT,
  task: RevocationTarget.REVOCATION_TARGET_TASK,
  chain: RevocationTarget.REVOCATION_TARGET_CHAIN,
  app: RevocationTarget.REVOCATION_TARGET_APP,
} as const;

/** --as: app credentials when BATON_CLIENT_ID/BATON_CLIENT_SECRET are set, else the operator credential. */
const asOption = (): Option =>
  new Option("--as <principal>", "call as the app (BATON_CLIENT_ID/BATON_CLIENT_SECRET) or as the operator")
    .choices(["app", "operator"])
    .default(undefined, "app when BATON_CLIENT_ID and BATON_CLIENT_SECRET are set, else operator");

const principal = (as: string | undefined): "app" | "operator" => (as === "app" || as === "operator" ? as : hasAppCredentials() ? "app" : "operator");

export function addTokenCommands(program: Command): void {
  const token = program.command("token").description("issue, validate and revoke tokens");

  token
    .command("issue")
    .description("issue a token as the app (BATON_CLIENT_ID/BATON_CLIENT_SECRET)")
    .requiredOption("--task <task-id>", "the task the token is for")
    .option("--scope <scope>", "scope (repeat)", repeated)
    .option("--audience <audience>", "audience (repeat)", repeated)
    .option("--ttl <seconds>", "lifetime", integer(1))
    .option("--human <id>", "the human the agent acts for")
    .option("--approval-id <id>", "the approval this request was granted (after APPROVAL_REQUIRED; see `baton approvals`)")
    .action(async (o: { task: string; scope?: string[]; audience?: string[]; ttl?: number; human?: string; approvalId?: string }, cmd: Command) => {
      const { client, md } = brokerClient(cmd, "app");
      const res = await call(client.issue.bind(client), {
        taskId: o.task,
        orchestrationId: "",
        humanPrincipal: o.human ?? "",
        scopes: o.scope ?? [],
        audiences: o.audience ?? [],
        ttl: o.ttl !== undefined ? { seconds: o.ttl, nanos: 0 } : undefined,
        allowTtlClamp: false,
        agentPublicKeyJwk: "",
        approvalId: o.approvalId ?? "",
      }, md);
      printOne(cmd, { access_token: res.accessToken, token_id: res.claims?.tokenId, agent_id: res.claims?.agentId, expire_time: res.claims?.expireTime, approval_id: res.claims?.approval?.approvalId });
    });

  token
    .command("validate")
    .description("check a token for an audience; exits 1 when it is not valid")
    .argument("<token>")
    .requiredOption("--audience <audience>", "the audience to check for")
    .addOption(asOption())
    .action(async (tok: string, o: { audience: string; as?: string }, cmd: Command) => {
      const { client, md } = brokerClient(cmd, principal(o.as));
      const res = await call(client.validate.bind(client), { token: tok, audience: o.audience, requiredScopes: [] }, md);
      printOne(cmd, { valid: res.valid, status: tokenStatusToJSON(res.status), scopes: res.claims?.scopes, agent_id: res.claims?.agentId });
      if (!res.valid) process.exitCode = 1;
    });

  token
    .command("revoke")
    .description("revoke a token, or everything of an agent, task, delegation chain or app")
    .argument("<id>", "the token id, agent id, task id or app id (see --target)")
    .addOption(new Option("--target <kind>", "what the id names").choices(Object.keys(TARGETS)).default("token"))
    .option("--app <app-id>", "the app a task belongs to (--target task as the operator)")
    .option("--reason <text>", "why, for the audit trail", "revoked from the command line")
    .addOption(asOption())
    .action(async (id: string, o: { target: keyof typeof TARGETS; app?: string; reason: string; as?: string }, cmd: Command) => {
      const as = principal(o.as);
      if (o.target === "task" && as === "operator" && !o.app) {
        cmd.error("error: option '--app <app-id>' is required for --target task as the operator", { exitCode: 2, code: "baton.taskWithoutApp" });
      }
      const { client, md } = brokerClient(cmd, as);
      const res = await call(client.revoke.bind(client), { target: TARGETS[o.target], id, appId: o.app ?? "", reason: o.reason }, md);
      printOne(cmd, { revoked: res.revocation?.id, cursor: res.revocation?.cursor });
    });
}
