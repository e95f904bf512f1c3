// `baton audit list` and `baton audit tail`: the audit trail through
// ListAuditEvents (the operator credential), filtered with typed flags.

import type { Metadata } from "@grpc/grpc-js";
import { type Command, InvalidArgumentError } from "commander";
import type { AdminServiceClient, AuditEvent, ListAuditEventsRequest } from "../gen/baton/v1/admin.js";
import { adminClient, call, globals, integer, repeated, type Row, table } from "./common.js";

const MAX_PAGE = 1000;

type Client = InstanceType<typeof AdminServiceClient>;

interface FilterFlags {
  app?: string;
  task?: string;
  agent?: string;
  human?: string;
  token?: string;
  kind?: string[];
  since?: Date;
  until?: Date;
}

/** An ISO 8601 time, or an age before now: `90s`, `15m`, `2h`, `7d`. */
function time(value: string): Date {
  const age = /^(\d{1,9})([smhd])$/.exec(value);
  if (age) return new Date(Date.now() - Number(age[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[age[2] as "s" | "m" | "h" | "d"]);
  const t = /^\d{4}-\d{2}-\d{2}/.test(value) ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(t.getTime())) throw new InvalidArgumentError("must be an ISO 8601 time (2026-01-31T12:00:00Z) or an age (90s, 15m, 2h, 7d)");
  return t;
}

const withFilterOptions = (cmd: Command): Command =>
  cmd
    .option("--app <app-id>", "only this app's events")
    .option("--task <task-id>", "only this task's events")
    .option("--agent <agent-id>", "only events about this agent (sub)")
    .option("--human <principal>", "only events for this human principal")
    .option("--token <token-id>", "only events about this token (jti)")
    .option("--kind <kind>", "only events of this kind, e.g. token.issued (repeat)", repeated)
    .option("--since <time>", "only events at or after: ISO 8601, or an age (15m, 2h, 7d)", time)
    .option("--until <time>", "only events before: ISO 8601, or an age", time);

function request(f: FilterFlags, afterSeq: number, pageSize: number, pageToken = ""): ListAuditEventsRequest {
  return {
    appId: f.app ?? "",
    taskId: f.task ?? "",
    agentId: f.agent ?? "",
    humanPrincipal: f.human ?? "",
    tokenId: f.token ?? "",
    kinds: f.kind ?? [],
    startTime: f.since,
    endTime: f.until,
    afterSeq,
    pageSize,
    pageToken,
  };
}

function eventRow(e: AuditEvent): Row {
  let data: unknown = null;
  try {
    data = JSON.parse(e.dataJson);
  } catch {
    data = e.dataJson;
  }
  return {
    seq: e.seq,
    event_time: e.eventTime?.toISOString() ?? null,
    kind: e.kind,
    actor: e.actor,
    app_id: e.appId,
    request_id: e.requestId,
    task_id: e.taskId,
    orchestration_id: e.orchestrationId,
    agent_id: e.agentId,
    human_principal: e.humanPrincipal,
    token_id: e.tokenId,
    lineage: e.lineage.map((l) => ({ token_id: l.tokenId, agent_id: l.agentId })),
    scopes: e.scopes,
    audiences: e.audiences,
    approval_id: e.approvalId,
    approval_result: e.approvalResult,
    credential_lifetime_seconds: e.credentialLifetime ? e.credentialLifetime.seconds : null,
    resource_server_id: e.resourceServerId,
    outcome: e.outcome,
    reason: e.reason,
    data,
  };
}

const tableRow = (e: AuditEvent): Row => ({
  seq: e.seq,
  time: e.eventTime?.toISOString(),
  kind: e.kind,
  actor: e.actor,
  task: e.taskId,
  agent: e.agentId,
  human: e.humanPrincipal,
  scopes: e.scopes,
  outcome: e.outcome,
});

/** Events as they come: one JSON object a line, or table rows (the header once). */
function printer(cmd: Command): (events: AuditEvent[]) => void {
  const asTable = globals(cmd).output === "table";
  let header = true;
  return (events) => {
    if (events.length === 0) return;
    if (!asTable) {
      process.stdout.write(events.map((e) => `${JSON.stringify(eventRow(e))}\n`).join(""));
      return;
    }
    const lines = table(events.map(tableRow)).split("\n");
    process.stdout.write(`${(header ? lines : lines.slice(1)).join("\n")}`);
    header = false;
  };
}

/** Up to `limit` events (0: all) from after `afterSeq`, a page at a time. */
async function listEvents(client: Client, md: Metadata, f: FilterFlags, afterSeq: number, limit: number, print: (e: AuditEvent[]) => void): Promise<number> {
  let pageToken = "";
  let printed = 0;
  let last = afterSeq;
  do {
    const want = limit === 0 ? MAX_PAGE : Math.min(MAX_PAGE, limit - printed);
    const res = await call(client.listAuditEvents.bind(client), request(f, afterSeq, want, pageToken), md);
    print(res.events);
    printed += res.events.length;
    last = res.events.at(-1)?.seq ?? last;
    pageToken = res.nextPageToken;
  } while (pageToken && (limit === 0 || printed < limit));
  return last;
}

/**
 * The seq after which exactly the last `n` matching events lie (0 when there
 * are fewer). The trail is listed oldest first only, so this searches: the
 * number of matches after S falls by at most one as S grows by one, so the
 * largest S with n matches after it has exactly n.
 */
async function seqBeforeLast(client: Client, md: Metadata, f: FilterFlags, n: number): Promise<number> {
  const matchesAfter = async (s: number, size: number): Promise<number> =>
    (await call(client.listAuditEvents.bind(client), request(f, s, size), md)).events.length;
  // An upper bound: a seq with no match after it.
  let hi = 1024;
  while ((await matchesAfter(hi, 1)) > 0) hi *= 2;
  let lo = 0;
  if ((await matchesAfter(lo, n)) < n) return 0;
  // Invariant: at least n matches after lo, fewer than n after hi.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if ((await matchesAfter(mid, n)) === n) lo = mid;
    else hi = mid;
  }
  return lo;
}

export function addAuditQueryCommands(audit: Command): void {
  withFilterOptions(audit
    .command("list")
    .description("list audit events oldest first, filtered (the operator credential); --output json prints one event a line"))
    .option("--after-seq <seq>", "only events after this sequence number", integer(0))
    .option("--limit <n>", "at most this many events, fetched a page at a time (0: all)", integer(0), 100)
    .action(async (o: FilterFlags & { afterSeq?: number; limit: number }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      await listEvents(client, md, o, o.afterSeq ?? 0, o.limit, printer(cmd));
    });

  withFilterOptions(audit
    .command("tail")
    .description("print the last events, filtered; with --follow keep printing new ones until interrupted (Ctrl-C)"))
    .option("-n, --lines <n>", "how many of the last events", integer(0, MAX_PAGE), 20)
    .option("-f, --follow", "keep polling for new events")
    .option("--interval <ms>", "how often --follow polls", integer(100), 1000)
    .action(async (o: FilterFlags & { lines: number; follow?: boolean; interval: number }, cmd: Command) => {
      const { client, md } = adminClient(cmd);
      const print = printer(cmd);
      let last = o.lines > 0 ? await listEvents(client, md, o, await seqBeforeLast(client, md, o, o.lines), o.lines, print) : await newestSeq(client, md, o);
      if (!o.follow) return;
      // Interrupted: finish the line being printed and exit 0.
      let stop: () => void = () => {};
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      let stopping = false;
      process.once("SIGINT", () => {
        stopping = true;
        stop();
      });
      process.once("SIGTERM", () => {
        stopping = true;
        stop();
      });
      while (!stopping) {
        last = await listEvents(client, md, o, last, 0, print);
        await Promise.race([stopped, new Promise((r) => setTimeout(r, o.interval))]);
      }
    });
}

/** The seq of the newest matching event, 0 when none. */
async function newestSeq(client: Client, md: Metadata, f: FilterFlags): Promise<number> {
  const res = await call(client.listAuditEvents.bind(client), request(f, await seqBeforeLast(client, md, f, 1), 1), md);
  return res.events[0]?.seq ?? 0;
}
