// Approval commands: approvers (the operator manages them) and approvals
// (approvers list, read and decide them; the operator may list and read).
// An approver authenticates with --approver-id (BATON_APPROVER_ID) and the
// secret in BATON_APPROVER_SECRET, or in the file BATON_APPROVER_SECRET_FILE
// names: never on the command line, where other users could read it.

import { Metadata } from "@grpc/grpc-js";
import { type Command, InvalidArgumentError, Option } from "commander";
import { envSecret } from "../config.js";
import { type ApprovalRule, ScopeClass, scopeClassToJSON } from "../gen/baton/v1/admin.js";
import { type Approval, ApprovalServiceClient, ApprovalState, approvalRequestKindToJSON, approvalStateToJSON } from "../gen/baton/v1/approvals.js";
import { adminClient, call, channelCredentials, globals, operatorToken, printList, printOne, repeated, type Row } from "./common.js";

const CLASSES: Record<string, ScopeClass> = {
  read: ScopeClass.SCOPE_CLASS_READ,
  write: ScopeClass.SCOPE_CLASS_WRITE,
  dangerous: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE,
};
const DEFAULT_APPROVALS: Record<string, number> = { read: 0, write: 0, dangerous: 1 };

export const APPROVAL_RULE_HELP =
  "approval rule PATTERN=CLASS[:N[:GROUP]] (repeat): CLASS read, write or dangerous; N approvals (read 0; write 0 or 1; dangerous 1 or 2, default 1); GROUP the approver group, required when N > 0. e.g. 'write:prescriptions:*=dangerous:2:pharmacists'";

/** Parses --approval-rule. The pattern may hold ':' and '=', so the class starts after the last '='. */
export function approvalRule(value: string, previous: ApprovalRule[] | undefined): ApprovalRule[] {
  const eq = value.lastIndexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("must be PATTERN=CLASS[:N[:GROUP]], e.g. 'write:prescriptions:*=dangerous:1:pharmacists'");
  const [cls = "", n, group, ...rest] = value.slice(eq + 1).split(":");
  if (!(cls in CLASSES)) throw new InvalidArgumentError(`class must be read, write or dangerous (got "${cls.slice(0, 32)}")`);
  if (rest.length > 0 || (n !== undefined && !/^[0-9]$/.test(n))) throw new InvalidArgumentError("must be PATTERN=CLASS[:N[:GROUP]] with N a digit");
  const rule: ApprovalRule = {
    pattern: value.slice(0, eq),
    scopeClass: CLASSES[cls]!,
    approvalsRequired: n === undefined ? DEFAULT_APPROVALS[cls]! : Number(n),
    approverGroup: group ?? "",
  };
  return [...(previous ?? []), rule];
}

/** A rule as printed: the same form --approval-rule takes. */
export function formatRule(r: ApprovalRule): string {
  const cls = Object.keys(CLASSES).find((k) => CLASSES[k] === r.scopeClass) ?? scopeClassToJSON(r.scopeClass);
  return `${r.pattern}=${cls}:${r.approvalsRequired}${r.approverGroup ? `:${r.approverGroup}` : ""}`;
}

const STATES = ["pending", "approved", "denied", "expired", "used"] as const;
const stateName = (s: ApprovalState): string => approvalStateToJSON(s).replace("APPROVAL_STATE_", "").toLowerCase();

const approvalRow = (a: Approval): Row => ({
  approval_id: a.approvalId,
  state: stateName(a.state),
  app_id: a.appId,
  task_id: a.taskId,
  human: a.humanPrincipal,
  scopes: a.scopesNeedingApproval,
  group: a.approverGroup,
  approvals: `${a.decisions.filter((d) => d.approved).length}/${a.approvalsRequired}`,
  expire_time: a.expireTime?.toISOString(),
});

const approvalDetail = (a: Approval | undefined): Row =>
  a
    ? {
        ...approvalRow(a),
        request_kind: approvalRequestKindToJSON(a.requestKind).replace("APPROVAL_REQUEST_KIND_", "").toLowerCase(),
        requester: a.requester,
        parent_token_id: a.parentTokenId || null,
        orchestration_id: a.orchestrationId || null,
        all_scopes: a.scopes,
        audiences: a.audiences,
        ttl_seconds: a.ttl ? Number(a.ttl.seconds) : null,
        key_thumbprint: a.keyThumbprint || null,
        decisions: a.decisions.map((d) => `${d.approved ? "approved" : "denied"} by ${d.approverName} (${d.approverId}) at ${d.decideTime?.toISOString()}: ${d.reason}`),
        create_time: a.createTime?.toISOString(),
        use_time: a.useTime?.toISOString() ?? null,
        token_id: a.tokenId || null,
      }
    : {};

/** As the approver named by --approver-id, or (when none is given and `operatorToo`) as the operator. */
function approvalsClient(cmd: Command, operatorToo: boolean): { client: InstanceType<typeof ApprovalServiceClient>; md: Metadata } {
  const id = cmd.opts<{ approverId?: string }>().approverId;
  const md = new Metadata();
  if (id) {
    const secret = envSecret(process.env, "BATON_APPROVER_SECRET");
    if (!secret) throw new Error("set BATON_APPROVER_SECRET (or BATON_APPROVER_SECRET_FILE) to the approver's secret (from `baton approvers create`)");
    md.set("authorization", `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`);
  } else if (operatorToo) {
    md.set("authorization", `Bearer ${operatorToken()}`);
  } else {
    cmd.error("error: option '--approver-id <id>' (or BATON_APPROVER_ID) is required: only an approver may decide", { exitCode: 2, code: "baton.noApprover" });
  }
  return { client: new ApprovalServiceClient(globals(cmd).addr, channelCredentials(cmd)), md };
}

const approverOption = (): Option => new Option("--approver-id <id>", "act as this approver (apv_...); its secret from BATON_APPROVER_SECRET[_FILE]").env("BATON_APPROVER_ID");

export function addApprovalCommands(program: Command): void {
  const approvers = program.command("approvers").description("manage approvers, the people who decide approvals (the operator credential)");

  approvers
    .command("create")
    .description("register an approver; prints its client secret, once")
    .requiredOption("--name <name>", "unique name, e.g. dr-smith")
    .option("--group <group>", "approver group it belongs to (repeat)", repeated)
    .action(async (o: { name: string; group?: string[] }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.createApprover.bind(client), { name: o.name, groups: o.group ?? [] }, md);
      printOne(cmd, { approver_id: res.approver?.approverId, groups: res.approver?.groups, client_secret: res.clientSecret, note: "the client secret is shown only now" });
    });

  approvers
    .command("list")
    .description("list the approvers")
    .action(async (_o: unknown, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const rows: Row[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listApprovers.bind(client), { pageSize: 100, pageToken }, md);
        rows.push(...res.approvers.map((a) => ({ approver_id: a.approverId, name: a.name, groups: a.groups, disabled: a.disabled })));
        pageToken = res.nextPageToken;
      } while (pageToken);
      printList(cmd, rows);
    });

  approvers
    .command("disable")
    .description("disable an approver; its approvals of still pending requests are withdrawn")
    .argument("<approver-id>")
    .option("--reason <text>", "why, for the audit trail")
    .action(async (approverId: string, o: { reason?: string }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const res = await call(client.disableApprover.bind(client), { approverId, reason: o.reason ?? "" }, md);
      printOne(cmd, { approver_id: res.approver?.approverId, disabled: res.approver?.disabled });
    });

  const approvals = program.command("approvals").description("list, read and decide approvals (as an approver; list and get also as the operator)");

  approvals
    .command("list")
    .description("list approvals, newest first: an approver's groups', or all as the operator")
    .addOption(approverOption())
    .addOption(new Option("--state <state>", "only approvals in this state").choices([...STATES]))
    .option("--app <app-id>", "only approvals of this app")
    .action(async (o: { state?: (typeof STATES)[number]; app?: string }, cmd: Command) => {
      const { client, md } = approvalsClient(cmd, true);
      const state = o.state ? ApprovalState[`APPROVAL_STATE_${o.state.toUpperCase()}` as keyof typeof ApprovalState] : ApprovalState.APPROVAL_STATE_UNSPECIFIED;
      const rows: Row[] = [];
      let pageToken = "";
      do {
        const res = await call(client.listApprovals.bind(client), { state, appId: o.app ?? "", pageSize: 100, pageToken }, md);
        rows.push(...res.approvals.map(approvalRow));
        pageToken = res.nextPageToken;
      } while (pageToken);
      printList(cmd, rows);
    });

  approvals
    .command("get")
    .description("show one approval: what is asked, for which task and human, and the decisions so far")
    .argument("<approval-id>")
    .addOption(approverOption())
    .action(async (approvalId: string, _o: unknown, cmd: Command) => {
      const { client, md } = approvalsClient(cmd, true);
      const res = await call(client.getApproval.bind(client), { approvalId }, md);
      printOne(cmd, approvalDetail(res.approval));
    });

  for (const [name, verb] of [["approve", "approve"], ["deny", "deny"]] as const) {
    approvals
      .command(name)
      .description(name === "approve" ? "approve a pending approval (dual control: it needs as many distinct approvers as its rule says)" : "deny a pending approval; the request can never be minted")
      .argument("<approval-id>")
      .requiredOption("--reason <text>", "why, for the audit trail (1 to 512 characters)")
      .addOption(approverOption())
      .action(async (approvalId: string, o: { reason: string }, cmd: Command) => {
        const { client, md } = approvalsClient(cmd, false);
        const fn = verb === "approve" ? client.approve.bind(client) : client.deny.bind(client);
        const res = await call(fn, { approvalId, reason: o.reason }, md);
        printOne(cmd, approvalDetail(res.approval));
      });
  }
}
