// `baton`: run the broker, or act as its operator through the AdminService.
// Each command group lives in server/cli/; `baton COMMAND --help` lists a
// command's flags.
//
// Client commands talk to --addr (BATON_ADDR, default 127.0.0.1:50051),
// plaintext unless --tls, --ca or --cert/--key is given. Operator commands
// use BATON_OPERATOR_TOKEN (or the file BATON_OPERATOR_TOKEN_FILE names) or
// <BATON_DATA_DIR>/operator-token; token commands act as an app with
// BATON_CLIENT_ID and BATON_CLIENT_SECRET (validate and revoke also as the
// operator). Approval commands act as the approver --approver-id
// (BATON_APPROVER_ID) with BATON_APPROVER_SECRET (or BATON_APPROVER_SECRET_FILE);
// `approvals list|get` without one act as the operator. `audit export` reads the database itself: DATABASE_URL, or the
// embedded cluster of a broker running in BATON_DATA_DIR.
//
// Exit codes: 0 done; 1 refused or failed (a gRPC error, an invalid token,
// a broken audit chain); 2 a usage error (unknown command or flag, bad value).

import type { ServiceError } from "@grpc/grpc-js";
import { Command, CommanderError, Option } from "commander";
import { addAdminCommands } from "./cli/admin.js";
import { addApprovalCommands } from "./cli/approvals.js";
import { addAuditCommands } from "./cli/audit.js";
import { checkGlobals, errorReason, VERSION } from "./cli/common.js";
import { serve } from "./cli/serve.js";
import { addTokenCommands } from "./cli/token.js";

const USAGE = `usage:
  baton serve
  baton app create --name NAME --scope SCOPE... --audience AUD... [--max-ttl SECONDS] [--max-depth N] [--rate-limit N] [--burst N] [--approval-rule PATTERN=CLASS[:N[:GROUP]]...]
  baton app get APP_ID
  baton app list
  baton app update APP_ID [--name NAME] [--scope SCOPE...] [--audience AUD...] [--max-ttl SECONDS] [--max-depth N] [--rate-limit N] [--burst N] [--approval-rule RULE... | --clear-approval-policy]
  baton app disable APP_ID [--reason TEXT]
  baton app rotate-secret APP_ID
  baton rs create --name NAME --audience AUD...
  baton rs list
  baton rs disable RS_ID [--reason TEXT]
  baton key list
  baton key rotate
  baton audit list [--app ID] [--task ID] [--agent SUB] [--human ID] [--token JTI] [--kind KIND...] [--since TIME] [--until TIME] [--after-seq SEQ] [--limit N]
  baton audit tail [the same filters] [-n N] [--follow] [--interval MS]
  baton audit verify [EXPORT_FILE...]
  baton audit export [--out FILE] [--after SEQ]
  baton token issue --task TASK --scope SCOPE... --audience AUD... [--ttl SECONDS] [--human ID] [--approval-id ID]
  baton token validate TOKEN --audience AUD
  baton token revoke ID [--target token|agent|task|chain|app] [--app APP_ID] [--reason TEXT]
  baton approvers create --name NAME --group GROUP...
  baton approvers list
  baton approvers disable APPROVER_ID [--reason TEXT]
  baton approvals list [--state pending|approved|denied|expired|used] [--app APP_ID] [--approver-id ID]
  baton approvals get APPROVAL_ID [--approver-id ID]
  baton approvals approve|deny APPROVAL_ID --reason TEXT --approver-id ID
global flags: --addr HOST:PORT --tls --ca FILE --cert FILE --key FILE --output json|table
(baton COMMAND --help for each command's flags)`;

/** Set by `serve`, which stays up after main() returns and exits on a signal. */
let serving = false;

function program(): Command {
  const p = new Command("baton")
    .description("Baton, a credential broker for AI agents")
    .version(VERSION, "-V, --version")
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .exitOverride()
    .addOption(new Option("--addr <host:port>", "the broker's gRPC address").env("BATON_ADDR").default("127.0.0.1:50051"))
    .option("--tls", "use TLS, trusting the system's root certificates")
    .option("--ca <file>", "use TLS, trusting this CA certificate (PEM) instead")
    .option("--cert <file>", "client certificate (PEM) for mutual TLS; needs --key")
    .option("--key <file>", "client private key (PEM) for mutual TLS; needs --cert")
    .addOption(new Option("--output <format>", "output format").choices(["json", "table"]).default("json"))
    .hook("preAction", (_p, action) => checkGlobals(action));
  p.command("serve")
    .description("run the broker (configured by BATON_* variables; see README)")
    .action(() => {
      serving = true;
      return serve();
    });
  addAdminCommands(p);
  addTokenCommands(p);
  addAuditCommands(p);
  addApprovalCommands(p);
  return p;
}

async function main(argv: string[]): Promise<void> {
  if (argv.length === 0) {
    process.stderr.write(`${USAGE}\n`);
    process.exit(2);
  }
  try {
    await program().parseAsync(argv, { from: "user" });
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    // Commander has already written help, the version or the error.
    const done = err.code === "commander.helpDisplayed" || err.code === "commander.version";
    process.exit(done ? 0 : 2);
  }
}

// Exit explicitly once a command is done: tsx's loader does not pass
// process.exitCode through, and open gRPC channels would keep us alive.
main(process.argv.slice(2)).then(
  () => {
    if (!serving) process.exit(process.exitCode ?? 0);
  },
  (err: unknown) => {
    // One line, no stack: the message says what is wrong, and the reason
    // (the ErrorInfo of a refusal) what a script can test for.
    const e = (err ?? {}) as Partial<ServiceError>;
    const reason = errorReason(err);
    process.stderr.write(`baton: ${e.details ?? e.message ?? String(err)}${reason ? ` (reason: ${reason})` : ""}\n`);
    process.exit(1);
  },
);
