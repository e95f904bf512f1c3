// The public API of Baton's TypeScript SDK for agents and the apps that run
// them: the broker client, agent keys and proofs of possession, typed errors,
// and the generated contract types callers see in answers.

export {
  BrokerClient,
  DEFAULT_TIMEOUT_MS,
  isLoopbackTarget,
  type AgentCredential,
  type AppCredentials,
  type AppOrOperator,
  type BrokerClientOptions,
  type CallOptions,
  type DelegateRequest,
  type IssueRequest,
  type IssuedToken,
  type OperatorCredentials,
  type RevocationTargetName,
  type RevokeRequest,
  type ValidateRequest,
} from "./client.js";
export { BatonError, ERROR_DOMAIN, fromServiceError, reasonOf } from "./errors.js";
export { AgentKey, PROOF_METADATA_KEY, PROOF_TYPE, tokenHash, type AgentKeyAlgorithm } from "./proof.js";
export { ErrorReason } from "./gen/baton/v1/errors.js";
export {
  BrokerServiceClient,
  RevocationTarget,
  TokenStatus,
  type LineageEntry,
  type Revocation,
  type TokenClaims,
  type ValidateResponse,
} from "./gen/baton/v1/broker.js";
