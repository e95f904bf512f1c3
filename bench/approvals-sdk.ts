// The approval round trip through the TypeScript SDK against a broker in its
// own process: an app's issue refused with ApprovalRequiredError, the
// approver's approve, the time from approve's answer to the requester's
// waitForApproval (WatchApproval) resolving, and the re-issue with the
// approval. One flow at a time, ROUNDS flows; prints the median and p90 of
// each step in ms.
//
//   npx tsx bench/approvals-sdk.ts

import { performance } from "node:perf_hooks";
import { AdminClient, ApprovalClient, ApprovalRequiredError, BrokerClient } from "../sdk/ts/src/index.js";
import { machine, median, OPERATOR, pct, startBench } from "./harness.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 40);

const bench = await startBench();
try {
  const b = await bench.broker();
  const op = { operatorToken: OPERATOR };
  const admin = new AdminClient(b.address);
  const broker = new BrokerClient(b.address);
  const approvals = new ApprovalClient(b.address);
  const { credentials: app } = await admin.createApp(op, {
    name: "bench-clinic",
    scopeCeiling: ["write:prescriptions:*"],
    audiences: ["ehr-api"],
    approvalPolicy: [{ pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "clinical-leads" }],
  });
  const { credentials: lead } = await admin.createApprover(op, { name: "dr-bench", groups: ["clinical-leads"] });
  const steps: Record<"refused" | "approve" | "notified" | "reissue", number[]> = { refused: [], approve: [], notified: [], reissue: [] };
  for (let i = 0; i < ROUNDS + 3; i++) {
    const req = { taskId: `visit-${i}`, scopes: ["write:prescriptions:P-1042"], audiences: ["ehr-api"] };
    let t = performance.now();
    let id = "";
    try {
      await broker.issue(app, req);
      throw new Error("issued without approval");
    } catch (err) {
      if (!(err instanceof ApprovalRequiredError)) throw err;
      id = err.approvalId;
    }
    const refused = performance.now() - t;
    let notifiedAt = 0;
    const waiting = broker.waitForApproval(app, id, { timeoutMs: 30_000 }).then((a) => {
      notifiedAt = performance.now();
      return a;
    });
    // Let the watch stream open (it sends the PENDING state first) before deciding.
    await new Promise((r) => setTimeout(r, 50));
    const approveStart = performance.now();
    await approvals.approve(lead, id, "bench");
    const approvedAt = performance.now();
    await waiting;
    t = performance.now();
    await broker.issue(app, { ...req, approvalId: id });
    const reissue = performance.now() - t;
    if (i < 3) continue; // warm-up
    steps.refused.push(refused);
    steps.approve.push(approvedAt - approveStart);
    // Negative when the watch saw APPROVED before approve's own answer arrived.
    steps.notified.push(notifiedAt - approvedAt);
    steps.reissue.push(reissue);
  }
  console.log(`# approval round trip through the TS SDK: ${machine()}; ${ROUNDS} flows, one at a time`);
  for (const [name, ms] of Object.entries(steps)) {
    const sorted = [...ms].sort((a, c) => a - c);
    console.log(`${name.padEnd(9)} median ${median(sorted).toFixed(1)} ms  p90 ${pct(sorted, 0.9).toFixed(1)} ms`);
  }
  approvals.close();
  broker.close();
  admin.close();
} finally {
  await bench.stop();
}
