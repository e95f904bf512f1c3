import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TokenStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_STATUS_UNSPECIFIED: _ClassVar[TokenStatus]
    TOKEN_STATUS_VALID: _ClassVar[TokenStatus]
    TOKEN_STATUS_MALFORMED: _ClassVar[TokenStatus]
    TOKEN_STATUS_ALGORITHM_NOT_ALLOWED: _ClassVar[TokenStatus]
    TOKEN_STATUS_UNKNOWN_KEY: _ClassVar[TokenStatus]
    TOKEN_STATUS_BAD_SIGNATURE: _ClassVar[TokenStatus]
    TOKEN_STATUS_EXPIRED: _ClassVar[TokenStatus]
    TOKEN_STATUS_NOT_YET_VALID: _ClassVar[TokenStatus]
    TOKEN_STATUS_WRONG_ISSUER: _ClassVar[TokenStatus]
    TOKEN_STATUS_WRONG_AUDIENCE: _ClassVar[TokenStatus]
    TOKEN_STATUS_REVOKED: _ClassVar[TokenStatus]
    TOKEN_STATUS_INSUFFICIENT_SCOPE: _ClassVar[TokenStatus]
    TOKEN_STATUS_WRONG_TYPE: _ClassVar[TokenStatus]
    TOKEN_STATUS_AUDIENCE_NOT_SERVED: _ClassVar[TokenStatus]

class RevocationTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_TARGET_UNSPECIFIED: _ClassVar[RevocationTarget]
    REVOCATION_TARGET_TOKEN: _ClassVar[RevocationTarget]
    REVOCATION_TARGET_AGENT: _ClassVar[RevocationTarget]
    REVOCATION_TARGET_TASK: _ClassVar[RevocationTarget]
    REVOCATION_TARGET_CHAIN: _ClassVar[RevocationTarget]
    REVOCATION_TARGET_APP: _ClassVar[RevocationTarget]
TOKEN_STATUS_UNSPECIFIED: TokenStatus
TOKEN_STATUS_VALID: TokenStatus
TOKEN_STATUS_MALFORMED: TokenStatus
TOKEN_STATUS_ALGORITHM_NOT_ALLOWED: TokenStatus
TOKEN_STATUS_UNKNOWN_KEY: TokenStatus
TOKEN_STATUS_BAD_SIGNATURE: TokenStatus
TOKEN_STATUS_EXPIRED: TokenStatus
TOKEN_STATUS_NOT_YET_VALID: TokenStatus
TOKEN_STATUS_WRONG_ISSUER: TokenStatus
TOKEN_STATUS_WRONG_AUDIENCE: TokenStatus
TOKEN_STATUS_REVOKED: TokenStatus
TOKEN_STATUS_INSUFFICIENT_SCOPE: TokenStatus
TOKEN_STATUS_WRONG_TYPE: TokenStatus
TOKEN_STATUS_AUDIENCE_NOT_SERVED: TokenStatus
REVOCATION_TARGET_UNSPECIFIED: RevocationTarget
REVOCATION_TARGET_TOKEN: RevocationTarget
REVOCATION_TARGET_AGENT: RevocationTarget
REVOCATION_TARGET_TASK: RevocationTarget
REVOCATION_TARGET_CHAIN: RevocationTarget
REVOCATION_TARGET_APP: RevocationTarget

class IssueRequest(_message.Message):
    __slots__ = ("task_id", "orchestration_id", "human_principal", "scopes", "audiences", "ttl", "allow_ttl_clamp", "agent_public_key_jwk", "approval_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    HUMAN_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TTL_CLAMP_FIELD_NUMBER: _ClassVar[int]
    AGENT_PUBLIC_KEY_JWK_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    orchestration_id: str
    human_principal: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    ttl: _duration_pb2.Duration
    allow_ttl_clamp: bool
    agent_public_key_jwk: str
    approval_id: str
    def __init__(self, task_id: _Optional[str] = ..., orchestration_id: _Optional[str] = ..., human_principal: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., allow_ttl_clamp: _Optional[bool] = ..., agent_public_key_jwk: _Optional[str] = ..., approval_id: _Optional[str] = ...) -> None: ...

class IssueResponse(_message.Message):
    __slots__ = ("access_token", "claims", "ttl_clamped")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    TTL_CLAMPED_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    claims: TokenClaims
    ttl_clamped: bool
    def __init__(self, access_token: _Optional[str] = ..., claims: _Optional[_Union[TokenClaims, _Mapping]] = ..., ttl_clamped: _Optional[bool] = ...) -> None: ...

class DelegateRequest(_message.Message):
    __slots__ = ("scopes", "audiences", "ttl", "allow_ttl_clamp", "agent_public_key_jwk", "approval_id")
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TTL_CLAMP_FIELD_NUMBER: _ClassVar[int]
    AGENT_PUBLIC_KEY_JWK_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    ttl: _duration_pb2.Duration
    allow_ttl_clamp: bool
    agent_public_key_jwk: str
    approval_id: str
    def __init__(self, scopes: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., allow_ttl_clamp: _Optional[bool] = ..., agent_public_key_jwk: _Optional[str] = ..., approval_id: _Optional[str] = ...) -> None: ...

class DelegateResponse(_message.Message):
    __slots__ = ("access_token", "claims", "ttl_clamped")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    TTL_CLAMPED_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    claims: TokenClaims
    ttl_clamped: bool
    def __init__(self, access_token: _Optional[str] = ..., claims: _Optional[_Union[TokenClaims, _Mapping]] = ..., ttl_clamped: _Optional[bool] = ...) -> None: ...

class ValidateRequest(_message.Message):
    __slots__ = ("token", "audience", "required_scopes")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_SCOPES_FIELD_NUMBER: _ClassVar[int]
    token: str
    audience: str
    required_scopes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, token: _Optional[str] = ..., audience: _Optional[str] = ..., required_scopes: _Optional[_Iterable[str]] = ...) -> None: ...

class ValidateResponse(_message.Message):
    __slots__ = ("valid", "status", "claims")
    VALID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    status: TokenStatus
    claims: TokenClaims
    def __init__(self, valid: _Optional[bool] = ..., status: _Optional[_Union[TokenStatus, str]] = ..., claims: _Optional[_Union[TokenClaims, _Mapping]] = ...) -> None: ...

class TokenClaims(_message.Message):
    __slots__ = ("token_id", "agent_id", "app_id", "task_id", "orchestration_id", "human_principal", "scopes", "audiences", "issuer", "issue_time", "not_before_time", "expire_time", "lineage", "depth", "key_thumbprint", "approval", "renewed_from_token_id")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    HUMAN_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    ISSUE_TIME_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    KEY_THUMBPRINT_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FROM_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    agent_id: str
    app_id: str
    task_id: str
    orchestration_id: str
    human_principal: str
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    issuer: str
    issue_time: _timestamp_pb2.Timestamp
    not_before_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    lineage: _containers.RepeatedCompositeFieldContainer[LineageEntry]
    depth: int
    key_thumbprint: str
    approval: TokenApproval
    renewed_from_token_id: str
    def __init__(self, token_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., app_id: _Optional[str] = ..., task_id: _Optional[str] = ..., orchestration_id: _Optional[str] = ..., human_principal: _Optional[str] = ..., scopes: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., issuer: _Optional[str] = ..., issue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lineage: _Optional[_Iterable[_Union[LineageEntry, _Mapping]]] = ..., depth: _Optional[int] = ..., key_thumbprint: _Optional[str] = ..., approval: _Optional[_Union[TokenApproval, _Mapping]] = ..., renewed_from_token_id: _Optional[str] = ...) -> None: ...

class TokenApproval(_message.Message):
    __slots__ = ("approval_id", "approver_ids")
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVER_IDS_FIELD_NUMBER: _ClassVar[int]
    approval_id: str
    approver_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, approval_id: _Optional[str] = ..., approver_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LineageEntry(_message.Message):
    __slots__ = ("token_id", "agent_id")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    agent_id: str
    def __init__(self, token_id: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("target", "id", "app_id", "reason")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    target: RevocationTarget
    id: str
    app_id: str
    reason: str
    def __init__(self, target: _Optional[_Union[RevocationTarget, str]] = ..., id: _Optional[str] = ..., app_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("revocation",)
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    revocation: Revocation
    def __init__(self, revocation: _Optional[_Union[Revocation, _Mapping]] = ...) -> None: ...

class RevokeManyRequest(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[RevokeRequest]
    def __init__(self, targets: _Optional[_Iterable[_Union[RevokeRequest, _Mapping]]] = ...) -> None: ...

class RevokeManyResponse(_message.Message):
    __slots__ = ("revocations",)
    REVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    revocations: _containers.RepeatedCompositeFieldContainer[Revocation]
    def __init__(self, revocations: _Optional[_Iterable[_Union[Revocation, _Mapping]]] = ...) -> None: ...

class Revocation(_message.Message):
    __slots__ = ("target", "id", "app_id", "revoke_time", "expire_time", "cursor")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    target: RevocationTarget
    id: str
    app_id: str
    revoke_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    cursor: str
    def __init__(self, target: _Optional[_Union[RevocationTarget, str]] = ..., id: _Optional[str] = ..., app_id: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class StreamRevocationsRequest(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class StreamRevocationsResponse(_message.Message):
    __slots__ = ("revocation", "snapshot_complete", "checkpoint", "key_set_changed")
    REVOCATION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    KEY_SET_CHANGED_FIELD_NUMBER: _ClassVar[int]
    revocation: Revocation
    snapshot_complete: SnapshotComplete
    checkpoint: Checkpoint
    key_set_changed: KeySetChanged
    def __init__(self, revocation: _Optional[_Union[Revocation, _Mapping]] = ..., snapshot_complete: _Optional[_Union[SnapshotComplete, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., key_set_changed: _Optional[_Union[KeySetChanged, _Mapping]] = ...) -> None: ...

class SnapshotComplete(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("cursor", "observe_time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    OBSERVE_TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    observe_time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[str] = ..., observe_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class KeySetChanged(_message.Message):
    __slots__ = ("jwks_json",)
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    def __init__(self, jwks_json: _Optional[str] = ...) -> None: ...

class GetKeySetRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetKeySetResponse(_message.Message):
    __slots__ = ("jwks_json",)
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    jwks_json: str
    def __init__(self, jwks_json: _Optional[str] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("ttl", "allow_ttl_clamp")
    TTL_FIELD_NUMBER: _ClassVar[int]
    ALLOW_TTL_CLAMP_FIELD_NUMBER: _ClassVar[int]
    ttl: _duration_pb2.Duration
    allow_ttl_clamp: bool
    def __init__(self, ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., allow_ttl_clamp: _Optional[bool] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("access_token", "claims", "ttl_clamped")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    TTL_CLAMPED_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    claims: TokenClaims
    ttl_clamped: bool
    def __init__(self, access_token: _Optional[str] = ..., claims: _Optional[_Union[TokenClaims, _Mapping]] = ..., ttl_clamped: _Optional[bool] = ...) -> None: ...

class ReportAccessRequest(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[AccessReport]
    def __init__(self, reports: _Optional[_Iterable[_Union[AccessReport, _Mapping]]] = ...) -> None: ...

class AccessReport(_message.Message):
    __slots__ = ("token_id", "agent_id", "audience", "scope", "resource", "allowed", "reason", "outcome", "decide_time")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    agent_id: str
    audience: str
    scope: str
    resource: str
    allowed: bool
    reason: str
    outcome: str
    decide_time: _timestamp_pb2.Timestamp
    def __init__(self, token_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., audience: _Optional[str] = ..., scope: _Optional[str] = ..., resource: _Optional[str] = ..., allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportAccessResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...
