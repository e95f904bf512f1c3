// The public API of Baton's TypeScript SDK for agents and the apps that run
// them: the broker client, the admin client for operators, agent keys and proofs of possession, typed errors,
// and the generated contract types callers see in answers; and for resource
// servers: the revocation subscriber, the offline token verifier and the
// gRPC / HTTP middleware built on them.

export {
  BrokerClient,
  DEFAULT_TIMEOUT_MS,
  isLoopbackTarget,
  MAX_BEARER_TOKEN_LENGTH,
  MAX_ACCESS_REPORT_BATCH,
  MAX_REVOKE_MANY_TARGETS,
  type AgentCredential,
  type AppCredentials,
  type AppOrOperator,
  type BrokerClientOptions,
  type CallOptions,
  type DelegateRequest,
  type IssueRequest,
  type IssuedToken,
  type IssueWithApprovalOptions,
  type Requester,
  type OperatorCredentials,
  type RenewRequest,
  type RevocationTargetName,
  type RevokeRequest,
  type ValidateRequest,
} from "./client.js";
export {
  AdminClient,
  type ApprovalRuleInput,
  type CreateApproverRequest,
  type CreatedApprover,
  type ScopeClassName,
  type AuditEventFilter,
  type CreateAppRequest,
  type CreateResourceServerRequest,
  type CreatedApp,
  type CreatedResourceServer,
  type PageRequest,
  type RotatedSigningKeys,
  type UpdateAppRequest,
  type UpdatedApp,
} from "./admin.js";
export { ApprovalError, ApprovalRequiredError, BatonError, ERROR_DOMAIN, fromServiceError, reasonOf } from "./errors.js";
export {
  ApprovalClient,
  DEFAULT_APPROVAL_WAIT_MS,
  isTerminal,
  MAX_DECISION_REASON_LENGTH,
  type ApprovalStateName,
  type ApproverCredentials,
  type ListApprovalsRequest,
  type WaitOptions,
} from "./approvals.js";
export { ApprovalRequestKind, ApprovalState, ApprovalServiceClient, type Approval, type ApprovalDecision } from "./gen/baton/v1/approvals.js";
export { AgentKey, PROOF_METADATA_KEY, PROOF_TYPE, tokenHash, type AgentKeyAlgorithm } from "./proof.js";
export {
  RevocationSet,
  RevocationSubscriber,
  type LineageFacts,
  type RevocationEventInfo,
  type RevocationFacts,
  type RevocationSubscriberOptions,
  type SubscriberState,
} from "./subscriber.js";
export {
  TokenVerifier,
  type ApprovalFacts,
  type RevocationView,
  type TokenVerifierOptions,
  type VerifiedClaims,
  type VerifyFailureReason,
  type VerifyOptions,
  type VerifyResult,
} from "./verifier.js";
export { AccessReporter, type AccessDecision, type AccessReporterOptions, type AccessReporterStats } from "./reporter.js";
export {
  batonHttpMiddleware,
  batonServerInterceptor,
  grpcClaims,
  httpClaims,
  httpHtm,
  PROOF_HEADER,
  type GrpcAuthOptions,
  type HttpAuthOptions,
} from "./middleware.js";
export { ErrorReason } from "./gen/baton/v1/errors.js";
export { ScopeClass, SigningKeyState, type ApprovalRule, type Approver, type App, type AuditEvent, type ResourceServer, type SigningKey, type VerifyAuditLogResponse } from "./gen/baton/v1/admin.js";
export {
  BrokerServiceClient,
  RevocationTarget,
  TokenStatus,
  type LineageEntry,
  type Revocation,
  type TokenApproval,
  type TokenClaims,
  type ValidateResponse,
} from "./gen/baton/v1/broker.js";
