import datetime

from baton.v1 import broker_pb2 as _broker_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScopeClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_CLASS_UNSPECIFIED: _ClassVar[ScopeClass]
    SCOPE_CLASS_READ: _ClassVar[ScopeClass]
    SCOPE_CLASS_WRITE: _ClassVar[ScopeClass]
    SCOPE_CLASS_DANGEROUS_WRITE: _ClassVar[ScopeClass]

class SigningKeyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNING_KEY_STATE_UNSPECIFIED: _ClassVar[SigningKeyState]
    SIGNING_KEY_STATE_NEXT: _ClassVar[SigningKeyState]
    SIGNING_KEY_STATE_ACTIVE: _ClassVar[SigningKeyState]
    SIGNING_KEY_STATE_RETIRED: _ClassVar[SigningKeyState]
SCOPE_CLASS_UNSPECIFIED: ScopeClass
SCOPE_CLASS_READ: ScopeClass
SCOPE_CLASS_WRITE: ScopeClass
SCOPE_CLASS_DANGEROUS_WRITE: ScopeClass
SIGNING_KEY_STATE_UNSPECIFIED: SigningKeyState
SIGNING_KEY_STATE_NEXT: SigningKeyState
SIGNING_KEY_STATE_ACTIVE: SigningKeyState
SIGNING_KEY_STATE_RETIRED: SigningKeyState

class App(_message.Message):
    __slots__ = ("app_id", "name", "scope_ceiling", "audiences", "max_ttl", "max_delegation_depth", "disabled", "create_time", "update_time", "rate_limit_per_second", "rate_limit_burst", "approval_policy", "max_task_lifetime")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CEILING_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_DELEGATION_DEPTH_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_BURST_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    name: str
    scope_ceiling: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    max_ttl: _duration_pb2.Duration
    max_delegation_depth: int
    disabled: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    rate_limit_per_second: int
    rate_limit_burst: int
    approval_policy: _containers.RepeatedCompositeFieldContainer[ApprovalRule]
    max_task_lifetime: _duration_pb2.Duration
    def __init__(self, app_id: _Optional[str] = ..., name: _Optional[str] = ..., scope_ceiling: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., max_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delegation_depth: _Optional[int] = ..., disabled: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., rate_limit_per_second: _Optional[int] = ..., rate_limit_burst: _Optional[int] = ..., approval_policy: _Optional[_Iterable[_Union[ApprovalRule, _Mapping]]] = ..., max_task_lifetime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ApprovalRule(_message.Message):
    __slots__ = ("pattern", "scope_class", "approvals_required", "approver_group")
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CLASS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVER_GROUP_FIELD_NUMBER: _ClassVar[int]
    pattern: str
    scope_class: ScopeClass
    approvals_required: int
    approver_group: str
    def __init__(self, pattern: _Optional[str] = ..., scope_class: _Optional[_Union[ScopeClass, str]] = ..., approvals_required: _Optional[int] = ..., approver_group: _Optional[str] = ...) -> None: ...

class CreateAppRequest(_message.Message):
    __slots__ = ("name", "scope_ceiling", "audiences", "max_ttl", "max_delegation_depth", "rate_limit_per_second", "rate_limit_burst", "approval_policy", "max_task_lifetime")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CEILING_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_DELEGATION_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_BURST_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    scope_ceiling: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    max_ttl: _duration_pb2.Duration
    max_delegation_depth: int
    rate_limit_per_second: int
    rate_limit_burst: int
    approval_policy: _containers.RepeatedCompositeFieldContainer[ApprovalRule]
    max_task_lifetime: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., scope_ceiling: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., max_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delegation_depth: _Optional[int] = ..., rate_limit_per_second: _Optional[int] = ..., rate_limit_burst: _Optional[int] = ..., approval_policy: _Optional[_Iterable[_Union[ApprovalRule, _Mapping]]] = ..., max_task_lifetime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateAppResponse(_message.Message):
    __slots__ = ("app", "client_secret")
    APP_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    app: App
    client_secret: str
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ..., client_secret: _Optional[str] = ...) -> None: ...

class GetAppRequest(_message.Message):
    __slots__ = ("app_id",)
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    def __init__(self, app_id: _Optional[str] = ...) -> None: ...

class GetAppResponse(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: App
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ...) -> None: ...

class ListAppsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAppsResponse(_message.Message):
    __slots__ = ("apps", "next_page_token")
    APPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    apps: _containers.RepeatedCompositeFieldContainer[App]
    next_page_token: str
    def __init__(self, apps: _Optional[_Iterable[_Union[App, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateAppRequest(_message.Message):
    __slots__ = ("app_id", "name", "update_scope_ceiling", "scope_ceiling", "update_audiences", "audiences", "max_ttl", "max_delegation_depth", "rate_limit_per_second", "rate_limit_burst", "update_approval_policy", "approval_policy", "max_task_lifetime")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_SCOPE_CEILING_FIELD_NUMBER: _ClassVar[int]
    SCOPE_CEILING_FIELD_NUMBER: _ClassVar[int]
    UPDATE_AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_TTL_FIELD_NUMBER: _ClassVar[int]
    MAX_DELEGATION_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_BURST_FIELD_NUMBER: _ClassVar[int]
    UPDATE_APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_TASK_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    name: str
    update_scope_ceiling: bool
    scope_ceiling: _containers.RepeatedScalarFieldContainer[str]
    update_audiences: bool
    audiences: _containers.RepeatedScalarFieldContainer[str]
    max_ttl: _duration_pb2.Duration
    max_delegation_depth: int
    rate_limit_per_second: int
    rate_limit_burst: int
    update_approval_policy: bool
    approval_policy: _containers.RepeatedCompositeFieldContainer[ApprovalRule]
    max_task_lifetime: _duration_pb2.Duration
    def __init__(self, app_id: _Optional[str] = ..., name: _Optional[str] = ..., update_scope_ceiling: _Optional[bool] = ..., scope_ceiling: _Optional[_Iterable[str]] = ..., update_audiences: _Optional[bool] = ..., audiences: _Optional[_Iterable[str]] = ..., max_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_delegation_depth: _Optional[int] = ..., rate_limit_per_second: _Optional[int] = ..., rate_limit_burst: _Optional[int] = ..., update_approval_policy: _Optional[bool] = ..., approval_policy: _Optional[_Iterable[_Union[ApprovalRule, _Mapping]]] = ..., max_task_lifetime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class UpdateAppResponse(_message.Message):
    __slots__ = ("app", "revoked_token_count")
    APP_FIELD_NUMBER: _ClassVar[int]
    REVOKED_TOKEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    app: App
    revoked_token_count: int
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ..., revoked_token_count: _Optional[int] = ...) -> None: ...

class DisableAppRequest(_message.Message):
    __slots__ = ("app_id", "reason")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    reason: str
    def __init__(self, app_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisableAppResponse(_message.Message):
    __slots__ = ("app",)
    APP_FIELD_NUMBER: _ClassVar[int]
    app: App
    def __init__(self, app: _Optional[_Union[App, _Mapping]] = ...) -> None: ...

class RotateAppSecretRequest(_message.Message):
    __slots__ = ("app_id",)
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    def __init__(self, app_id: _Optional[str] = ...) -> None: ...

class RotateAppSecretResponse(_message.Message):
    __slots__ = ("client_secret",)
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    client_secret: str
    def __init__(self, client_secret: _Optional[str] = ...) -> None: ...

class ResourceServer(_message.Message):
    __slots__ = ("resource_server_id", "name", "audiences", "disabled", "create_time", "update_time")
    RESOURCE_SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    resource_server_id: str
    name: str
    audiences: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, resource_server_id: _Optional[str] = ..., name: _Optional[str] = ..., audiences: _Optional[_Iterable[str]] = ..., disabled: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateResourceServerRequest(_message.Message):
    __slots__ = ("name", "audiences")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    audiences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., audiences: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateResourceServerResponse(_message.Message):
    __slots__ = ("resource_server", "client_secret")
    RESOURCE_SERVER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    resource_server: ResourceServer
    client_secret: str
    def __init__(self, resource_server: _Optional[_Union[ResourceServer, _Mapping]] = ..., client_secret: _Optional[str] = ...) -> None: ...

class ListResourceServersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResourceServersResponse(_message.Message):
    __slots__ = ("resource_servers", "next_page_token")
    RESOURCE_SERVERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    resource_servers: _containers.RepeatedCompositeFieldContainer[ResourceServer]
    next_page_token: str
    def __init__(self, resource_servers: _Optional[_Iterable[_Union[ResourceServer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DisableResourceServerRequest(_message.Message):
    __slots__ = ("resource_server_id", "reason")
    RESOURCE_SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    resource_server_id: str
    reason: str
    def __init__(self, resource_server_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisableResourceServerResponse(_message.Message):
    __slots__ = ("resource_server",)
    RESOURCE_SERVER_FIELD_NUMBER: _ClassVar[int]
    resource_server: ResourceServer
    def __init__(self, resource_server: _Optional[_Union[ResourceServer, _Mapping]] = ...) -> None: ...

class SigningKey(_message.Message):
    __slots__ = ("key_id", "algorithm", "state", "public_jwk_json", "create_time", "activate_time", "retire_time")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_JWK_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RETIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    algorithm: str
    state: SigningKeyState
    public_jwk_json: str
    create_time: _timestamp_pb2.Timestamp
    activate_time: _timestamp_pb2.Timestamp
    retire_time: _timestamp_pb2.Timestamp
    def __init__(self, key_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., state: _Optional[_Union[SigningKeyState, str]] = ..., public_jwk_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSigningKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSigningKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[SigningKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[SigningKey, _Mapping]]] = ...) -> None: ...

class RotateSigningKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RotateSigningKeyResponse(_message.Message):
    __slots__ = ("active", "next")
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    active: SigningKey
    next: SigningKey
    def __init__(self, active: _Optional[_Union[SigningKey, _Mapping]] = ..., next: _Optional[_Union[SigningKey, _Mapping]] = ...) -> None: ...

class VerifyAuditLogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyAuditLogResponse(_message.Message):
    __slots__ = ("intact", "event_count", "first_broken_seq")
    INTACT_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_BROKEN_SEQ_FIELD_NUMBER: _ClassVar[int]
    intact: bool
    event_count: int
    first_broken_seq: int
    def __init__(self, intact: _Optional[bool] = ..., event_count: _Optional[int] = ..., first_broken_seq: _Optional[int] = ...) -> None: ...

class ListAuditEventsRequest(_message.Message):
    __slots__ = ("app_id", "task_id", "agent_id", "human_principal", "kinds", "start_time", "end_time", "after_seq", "token_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HUMAN_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    task_id: str
    agent_id: str
    human_principal: str
    kinds: _containers.RepeatedScalarFieldContainer[str]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    after_seq: int
    token_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., task_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., human_principal: _Optional[str] = ..., kinds: _Optional[_Iterable[str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., after_seq: _Optional[int] = ..., token_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAuditEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("seq", "kind", "event_time", "actor", "app_id", "request_id", "task_id", "orchestration_id", "agent_id", "human_principal", "token_id", "lineage", "scopes", "audiences", "approval_id", "approval_result", "credential_lifetime", "resource_server_id", "outcome", "reason", "data_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    HUMAN_PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_RESULT_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_LIFETIME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: str
    event_time: _timestamp_pb2.Timestamp
    actor: str
    app_id: str
    request_id: str
    task_id: str
    orchestration_id: str
    agent_id: str
    human_principal: str
    token_id: str
    lineage: _containers.RepeatedCompositeFieldContainer[_broker_pb2.LineageEntry]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    audiences: _containers.RepeatedScalarFieldContainer[str]
    approval_id: str
    approval_result: str
    credential_lifetime: _duration_pb2.Duration
    resource_server_id: str
    outcome: str
    reason: str
    data_json: str
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[str] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., app_id: _Optional[str] = ..., request_id: _Optional[str] = ..., task_id: _Optional[str] = ..., orchestration_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., human_principal: _Optional[str] = ..., token_id: _Optional[str] = ..., lineage: _Optional[_Iterable[_Union[_broker_pb2.LineageEntry, _Mapping]]] = ..., scopes: _Optional[_Iterable[str]] = ..., audiences: _Optional[_Iterable[str]] = ..., approval_id: _Optional[str] = ..., approval_result: _Optional[str] = ..., credential_lifetime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., resource_server_id: _Optional[str] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...

class Approver(_message.Message):
    __slots__ = ("approver_id", "name", "groups", "disabled", "create_time", "update_time")
    APPROVER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    approver_id: str
    name: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    disabled: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, approver_id: _Optional[str] = ..., name: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., disabled: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateApproverRequest(_message.Message):
    __slots__ = ("name", "groups")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateApproverResponse(_message.Message):
    __slots__ = ("approver", "client_secret")
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SECRET_FIELD_NUMBER: _ClassVar[int]
    approver: Approver
    client_secret: str
    def __init__(self, approver: _Optional[_Union[Approver, _Mapping]] = ..., client_secret: _Optional[str] = ...) -> None: ...

class ListApproversRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListApproversResponse(_message.Message):
    __slots__ = ("approvers", "next_page_token")
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    approvers: _containers.RepeatedCompositeFieldContainer[Approver]
    next_page_token: str
    def __init__(self, approvers: _Optional[_Iterable[_Union[Approver, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DisableApproverRequest(_message.Message):
    __slots__ = ("approver_id", "reason")
    APPROVER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    approver_id: str
    reason: str
    def __init__(self, approver_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DisableApproverResponse(_message.Message):
    __slots__ = ("approver",)
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    approver: Approver
    def __init__(self, approver: _Optional[_Union[Approver, _Mapping]] = ...) -> None: ...
