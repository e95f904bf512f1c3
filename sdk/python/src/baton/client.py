"""A thin client for Baton's BrokerService."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, Union, cast

import grpc

from baton._args import string_list
from baton._rpc import ChannelClient, call, wait_for_decision
from baton.errors import ApprovalRequiredError, bearer_metadata
from baton.proof import DELEGATE_METHOD, PROOF_METADATA_KEY, RENEW_METHOD, REVOKE_METHOD, AgentKey
from baton.v1 import approvals_pb2, approvals_pb2_grpc, broker_pb2, broker_pb2_grpc

_Response = TypeVar("_Response")

#: The deadline, in seconds, of a call when neither the client nor the call
#: sets one.
DEFAULT_TIMEOUT = 5.0

#: How long, in seconds, a wait for an approval's decision lasts unless told:
#: the broker's default approval window, 15 minutes.
DEFAULT_APPROVAL_WAIT = 15 * 60.0


def _approval_method(name: str) -> str:
    service = approvals_pb2.DESCRIPTOR.services_by_name["ApprovalService"]
    return f"/{service.full_name}/{service.methods_by_name[name].name}"


#: The full gRPC method of GetApproval, the ``htm`` of an agent's proof for it.
GET_APPROVAL_METHOD = _approval_method("GetApproval")

#: The full gRPC method of WatchApproval, the ``htm`` of an agent's proof for it.
WATCH_APPROVAL_METHOD = _approval_method("WatchApproval")


class BrokerClient(ChannelClient):
    """A connection to a broker with the caller's credentials.

    Every call sends an ``authorization`` header (``Basic`` for an app,
    ``Bearer`` for an agent or an operator), has a deadline, and raises
    :class:`baton.BatonError` (or a subclass) on failure. The agent calls
    (:meth:`delegate`, :meth:`release`) take the agent's token per call, with
    its :class:`baton.AgentKey` when the token is key-bound, and attach a
    fresh proof of possession.

    Usable as a context manager; otherwise call :meth:`close`.
    """

    def __init__(
        self,
        target: str,
        client_id: str | None = None,
        client_secret: str | None = None,
        bearer_token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
        channel_credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Open a channel to the broker at ``target``.

        Args:
            target: ``host:port`` or any gRPC target URI.
            client_id: An app's client id, or a resource server's
                (``rs_...``, which may call only :meth:`validate`, for its
                audiences); needs ``client_secret``.
            client_secret: That app's or resource server's secret.
            bearer_token: An agent's Baton token or an operator credential,
                instead of ``client_id``/``client_secret``.
            timeout: The deadline of each call, in seconds, unless the call
                gives its own; ``None`` for no deadline.
            channel_credentials: Transport security, for example
                ``grpc.ssl_channel_credentials()``. ``None`` is plaintext,
                only fit for a broker on loopback: credentials travel on
                every call.
            options: gRPC channel options.

        Raises:
            ValueError: When credentials are incomplete or of both kinds.
            TokenTooLongError: When ``bearer_token`` is longer than
                :data:`baton.MAX_TOKEN_LENGTH` (a ``ValueError``).
        """
        if (client_id is None) != (client_secret is None):
            raise ValueError("client_id and client_secret go together")
        if client_id is not None and bearer_token is not None:
            raise ValueError("give either client_id/client_secret or bearer_token, not both")
        self._metadata: tuple[tuple[str, str], ...] = ()
        if client_id is not None and client_secret is not None:
            basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
            self._metadata = (("authorization", f"Basic {basic}"),)
        elif bearer_token is not None:
            self._metadata = bearer_metadata(bearer_token)
        self._timeout = timeout
        if channel_credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, channel_credentials, options=options)
        self._stub = broker_pb2_grpc.BrokerServiceStub(self._channel)
        self._approvals = approvals_pb2_grpc.ApprovalServiceStub(self._channel)

    @property
    def stub(self) -> broker_pb2_grpc.BrokerServiceStub:
        """The generated stub, for calls this class does not wrap.

        Calls made on it directly get neither credentials nor a deadline:
        pass ``metadata=client.call_metadata`` and ``timeout=...``.
        """
        return self._stub

    @property
    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata (``authorization``) this client sends on its calls.

        :meth:`delegate` and :meth:`release` send the agent's token (and
        proof) given to them instead.
        """
        return self._metadata

    def issue(
        self,
        task_id: str,
        scopes: Sequence[str],
        audiences: Sequence[str],
        *,
        ttl: datetime.timedelta | None = None,
        allow_ttl_clamp: bool = False,
        orchestration_id: str = "",
        human_principal: str = "",
        agent_public_key_jwk: str | AgentKey = "",
        approval_id: str = "",
        timeout: float | None = None,
    ) -> broker_pb2.IssueResponse:
        """Issue a token for one new agent of one task (as an app).

        Args:
            task_id: The task the agent works on.
            scopes: The scopes the agent needs; each within the app's ceiling.
            audiences: The resource servers the token is for.
            ttl: The token's lifetime; ``None`` for the broker default.
            allow_ttl_clamp: Shorten a TTL above the app's maximum instead of
                failing.
            orchestration_id: The orchestration run, for the audit trail.
            human_principal: The human the work is done for.
            agent_public_key_jwk: A public JWK (JSON) to bind the token to,
                or the agent's :class:`baton.AgentKey` (its public part is
                sent). The agent then proves possession on every call.
            approval_id: The approved approval this same request was
                granted, after an :class:`baton.ApprovalRequiredError`.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The signed token and its decoded claims.

        Raises:
            BatonError: For example :class:`baton.PermissionDeniedError` with
                reason ``SCOPE_NOT_COVERED``.
            TypeError: When ``scopes`` or ``audiences`` is a single string
                rather than a list (nothing is sent).
        """
        request = broker_pb2.IssueRequest(
            task_id=task_id,
            scopes=string_list(scopes, "scopes"),
            audiences=string_list(audiences, "audiences"),
            ttl=ttl,
            allow_ttl_clamp=allow_ttl_clamp,
            orchestration_id=orchestration_id,
            human_principal=human_principal,
            agent_public_key_jwk=_jwk_text(agent_public_key_jwk),
            approval_id=approval_id,
        )
        response: broker_pb2.IssueResponse = self._call(self._stub.Issue, request, timeout)
        return response

    def delegate(
        self,
        token: str,
        scopes: Sequence[str],
        audiences: Sequence[str] = (),
        *,
        key: AgentKey | None = None,
        ttl: datetime.timedelta | None = None,
        allow_ttl_clamp: bool = False,
        agent_public_key_jwk: str | AgentKey = "",
        approval_id: str = "",
        timeout: float | None = None,
    ) -> broker_pb2.DelegateResponse:
        """Ask for a token for a sub-agent (as an agent, with its own token).

        The call authenticates with ``authorization: Bearer <token>``, whatever
        credentials the client was opened with, and carries a fresh proof of
        possession signed by ``key`` when one is given.

        Args:
            token: The calling agent's own token, the parent.
            scopes: The sub-agent's scopes; each covered by the parent's.
            audiences: The child's audiences, each one of the parent's;
                empty for the parent's.
            key: The key the parent token is bound to; required when it is
                key-bound (else the broker refuses with ``PROOF_REQUIRED``).
            ttl: The child's lifetime; ``None`` for the broker default,
                shortened to the parent's remaining life.
            allow_ttl_clamp: Shorten a TTL beyond the parent's remaining life
                instead of failing.
            agent_public_key_jwk: The sub-agent's public JWK (JSON) or
                :class:`baton.AgentKey`, to bind the child token to.
            approval_id: The approved approval this same delegation was
                granted, after an :class:`baton.ApprovalRequiredError`.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The child token and its claims, lineage included.

        Raises:
            BatonError: For example :class:`baton.PermissionDeniedError` with
                reason ``SCOPE_NOT_COVERED``, or reason ``PROOF_REQUIRED``,
                ``PROOF_INVALID`` or ``PROOF_REPLAYED``.
            ValueError: When ``token`` is empty, or
                :class:`baton.TokenTooLongError` when it is longer than
                :data:`baton.MAX_TOKEN_LENGTH` (nothing is sent).
            TypeError: When ``scopes`` or ``audiences`` is a single string
                rather than a list (nothing is sent).
        """
        request = broker_pb2.DelegateRequest(
            scopes=string_list(scopes, "scopes"),
            audiences=string_list(audiences, "audiences"),
            ttl=ttl,
            allow_ttl_clamp=allow_ttl_clamp,
            agent_public_key_jwk=_jwk_text(agent_public_key_jwk),
            approval_id=approval_id,
        )
        metadata = _agent_metadata(token, key, DELEGATE_METHOD)
        response: broker_pb2.DelegateResponse = self._call(
            self._stub.Delegate, request, timeout, metadata
        )
        return response

    def renew(
        self,
        token: str,
        key: AgentKey | None = None,
        *,
        ttl: datetime.timedelta | None = None,
        allow_ttl_clamp: bool = False,
        timeout: float | None = None,
    ) -> broker_pb2.RenewResponse:
        """Trade an agent's own token for a fresh one (as the agent).

        The new token has the same agent, scopes, audiences, lineage and key
        binding; its claims name the old token (``renewed_from_token_id``),
        and the old token, with everything delegated from it, is revoked in
        the same transaction. Calls carry ``authorization: Bearer <token>``
        and, when ``key`` is given, a fresh proof of possession. Use the same
        ``key`` with the new token.

        Args:
            token: The agent's own token.
            key: The key the token is bound to; required when it is key-bound.
            ttl: The new token's lifetime; ``None`` for the broker default.
                Never past the task's lifetime maximum nor, for a delegated
                token, its parent's expiry.
            allow_ttl_clamp: Shorten a TTL above the app's maximum or the
                parent's remaining life instead of failing.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The new token and its claims.

        Raises:
            BatonError: For example reason ``TASK_LIFETIME_EXCEEDED`` (code
                ``FAILED_PRECONDITION``, with ``task_expire_time`` in its
                metadata) once the task's lifetime maximum is reached, ``TOKEN_INVALID`` for a revoked, expired
                or already renewed token, or ``PROOF_REQUIRED``.
            ValueError: When ``token`` is empty, or
                :class:`baton.TokenTooLongError` when it is longer than
                :data:`baton.MAX_TOKEN_LENGTH` (nothing is sent).
            TypeError: When ``key`` is not an :class:`baton.AgentKey` or
                ``ttl`` not a ``timedelta`` (nothing is sent).
        """
        if key is not None and not isinstance(key, AgentKey):
            raise TypeError(f"key must be an AgentKey, not {type(key).__name__}")
        if ttl is not None and not isinstance(ttl, datetime.timedelta):
            raise TypeError(f"ttl must be a datetime.timedelta, not {type(ttl).__name__}")
        if not isinstance(allow_ttl_clamp, bool):
            raise TypeError(f"allow_ttl_clamp must be a bool, not {type(allow_ttl_clamp).__name__}")
        request = broker_pb2.RenewRequest(ttl=ttl, allow_ttl_clamp=allow_ttl_clamp)
        metadata = _agent_metadata(token, key, RENEW_METHOD)
        response: broker_pb2.RenewResponse = self._call(self._stub.Renew, request, timeout, metadata)
        return response

    def release(
        self,
        token: str,
        key: AgentKey | None = None,
        *,
        reason: str = "",
        timeout: float | None = None,
    ) -> broker_pb2.RevokeResponse:
        """Release an agent's own token: revoke it and every token delegated from it.

        Called by the agent when its work is done: ``Revoke`` with target
        ``TOKEN`` and an empty id ("the token I am calling with"), with
        ``authorization: Bearer <token>`` and, when ``key`` is given, a fresh
        proof of possession.

        Args:
            token: The agent's own token.
            key: The key the token is bound to; required when it is key-bound.
            reason: Why, for the audit trail.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The revocation as stored; effective when this returns.

        Raises:
            BatonError: For example reason ``PROOF_REQUIRED`` when the token is
                key-bound and no key was given.
            ValueError: When ``token`` is empty, or
                :class:`baton.TokenTooLongError` when it is longer than
                :data:`baton.MAX_TOKEN_LENGTH` (nothing is sent).
        """
        request = broker_pb2.RevokeRequest(
            target=broker_pb2.REVOCATION_TARGET_TOKEN, id="", reason=reason
        )
        metadata = _agent_metadata(token, key, REVOKE_METHOD)
        response: broker_pb2.RevokeResponse = self._call(
            self._stub.Revoke, request, timeout, metadata
        )
        return response

    def validate(
        self,
        token: str,
        audience: str,
        required_scopes: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> broker_pb2.ValidateResponse:
        """Check a token online for one audience (as an app or an operator).

        An invalid token is an ordinary answer (``valid`` false and a
        ``status`` saying why), not an error.

        Args:
            token: The token to check.
            audience: The resource server the caller validates for.
            required_scopes: Scopes the token must cover.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The verdict, with the claims when the signature verified.

        Raises:
            BatonError: When the call itself fails (credentials, broker).
            TypeError: When ``required_scopes`` is a single string rather
                than a list (nothing is sent).
        """
        request = broker_pb2.ValidateRequest(
            token=token,
            audience=audience,
            required_scopes=string_list(required_scopes, "required_scopes"),
        )
        response: broker_pb2.ValidateResponse = self._call(
            self._stub.Validate, request, timeout
        )
        return response

    def revoke(
        self,
        target: broker_pb2.RevocationTarget | str,
        target_id: str = "",
        *,
        app_id: str = "",
        reason: str = "",
        timeout: float | None = None,
    ) -> broker_pb2.RevokeResponse:
        """Revoke a token, an agent, a task, a delegation chain or an app.

        Args:
            target: A ``RevocationTarget`` value, or its name with or
                without the ``REVOCATION_TARGET_`` prefix (``"TOKEN"``).
            target_id: The token, agent, task or app id. Empty with
                ``TOKEN`` for an agent releasing the token it calls with.
            app_id: The app a ``TASK`` belongs to (operators only).
            reason: Why, for the audit trail.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The revocation as stored; effective when this returns.

        Raises:
            BatonError: For example :class:`baton.PermissionDeniedError` when
                an app revokes what another app issued.
            ValueError: When ``target`` names no revocation target.
        """
        request = broker_pb2.RevokeRequest(
            target=_target(target), id=target_id, app_id=app_id, reason=reason
        )
        response: broker_pb2.RevokeResponse = self._call(self._stub.Revoke, request, timeout)
        return response

    def revoke_many(
        self,
        targets: Iterable[RevokeTarget],
        *,
        reason: str = "",
        timeout: float | None = None,
    ) -> broker_pb2.RevokeManyResponse:
        """Revoke up to 1000 targets at once, all or none (as an app or an operator).

        For incident response. The broker checks each target as
        :meth:`revoke` would; the first one refused refuses the whole call
        (its position in ``error.metadata["index"]``, 0-based) and nothing is
        stored. Otherwise every revocation is stored in one transaction.

        Args:
            targets: Each a ``broker_pb2.RevokeRequest``, or a tuple
                ``(target, id)`` or ``(target, id, app_id)`` with ``target``
                as in :meth:`revoke` (a ``RevocationTarget`` or its name).
                1 to 1000 of them (the broker refuses other counts with
                ``INVALID_REQUEST``).
            reason: Why, for the audit trail; given to every target that has
                no reason of its own.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The revocations as stored, in the order of ``targets``; effective
            when this returns.

        Raises:
            BatonError: For example :class:`baton.PermissionDeniedError` when
                an app names what another app issued.
            TypeError: When ``targets`` is a single string or request rather
                than a list, or holds something else (nothing is sent).
            ValueError: When a target names no revocation target (nothing is
                sent).
        """
        if isinstance(targets, (str, bytes, bytearray, broker_pb2.RevokeRequest, tuple)):
            # A lone tuple would be read as a list of its fields.
            raise TypeError(
                f"targets takes a list of targets, not a single {type(targets).__name__}"
            )
        try:
            items = list(targets)
        except TypeError:
            raise TypeError(
                f"targets takes a list of targets, not {type(targets).__name__}"
            ) from None
        request = broker_pb2.RevokeManyRequest(
            targets=[_revoke_request(item, reason, i) for i, item in enumerate(items)]
        )
        response: broker_pb2.RevokeManyResponse = self._call(
            self._stub.RevokeMany, request, timeout
        )
        return response

    def report_access(
        self, reports: Iterable[broker_pb2.AccessReport], *, timeout: float | None = None
    ) -> int:
        """Report up to 500 access decisions, all or none (as a resource server).

        The broker stores each as an audit event (``access.allowed`` /
        ``access.denied``) with the token's lineage. A refused report
        refuses the whole call (its position in ``error.metadata["index"]``)
        and nothing is stored. :class:`baton.AccessReporter` calls this in
        the background, off the verification path.

        Args:
            reports: ``broker_pb2.AccessReport`` messages, 1 to 500.
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            How many were stored (all of them).

        Raises:
            BatonError: For example ``NOT_FOUND`` for a token the broker
                never issued, ``AUDIENCE_NOT_SERVED``, or
                :class:`baton.PermissionDeniedError` when the client is not a
                resource server.
            TypeError: When ``reports`` holds something other than
                ``AccessReport`` messages (nothing is sent).
        """
        items = list(reports)
        for item in items:
            if not isinstance(item, broker_pb2.AccessReport):
                raise TypeError(f"reports takes AccessReport messages; it holds a {type(item).__name__}")
        response: broker_pb2.ReportAccessResponse = self._call(
            self._stub.ReportAccess, broker_pb2.ReportAccessRequest(reports=items), timeout
        )
        return response.accepted

    def get_key_set(self, *, timeout: float | None = None) -> broker_pb2.GetKeySetResponse:
        """Fetch the public keys that verify Baton tokens (needs no credentials).

        Args:
            timeout: This call's deadline in seconds; the client's by default.

        Returns:
            The JWK set as JSON in ``jwks_json``, each key with ``kid``,
            ``alg`` and ``use: sig``; :class:`baton.TokenVerifier` reads it.

        Raises:
            BatonError: When the call fails.
        """
        response: broker_pb2.GetKeySetResponse = self._call(
            self._stub.GetKeySet, broker_pb2.GetKeySetRequest(), timeout
        )
        return response

    # ---- Approvals, the requester's side (issue 8) ----

    def get_approval(
        self,
        approval_id: str,
        *,
        token: str | None = None,
        key: AgentKey | None = None,
        timeout: float | None = None,
    ) -> approvals_pb2.Approval:
        """Return one approval the caller asked for.

        With the client's credentials (the app, or an operator), or as the
        agent that asked to delegate: ``token`` (and ``key`` when it is
        key-bound; a proof for ``GetApproval`` is attached).

        Raises:
            BatonError: For example :class:`baton.NotFoundError`.
        """
        metadata = None if token is None else _agent_metadata(token, key, GET_APPROVAL_METHOD)
        request = approvals_pb2.GetApprovalRequest(approval_id=approval_id)
        response: approvals_pb2.GetApprovalResponse = self._call(
            self._approvals.GetApproval, request, timeout, metadata
        )
        return response.approval

    def wait_for_approval(
        self,
        approval_id: str,
        timeout: float = DEFAULT_APPROVAL_WAIT,
        *,
        token: str | None = None,
        key: AgentKey | None = None,
    ) -> approvals_pb2.Approval:
        """Wait until the approval is decided for good, through ``WatchApproval``.

        A stream that breaks is followed again. Called as :meth:`get_approval`
        is (the client's credentials, or an agent's ``token`` and ``key``;
        each stream gets a fresh proof).

        Args:
            approval_id: The approval, from :attr:`baton.ApprovalRequiredError.approval_id`.
            timeout: How long to wait in all, in seconds (default 15 minutes,
                the broker's default approval window).
            token: An agent's token, to wait as that agent.
            key: The key ``token`` is bound to, if any.

        Returns:
            The approval: ``APPROVED`` (send the same request again with
            ``approval_id``), ``DENIED``, ``EXPIRED`` or ``USED``.

        Raises:
            ApprovalError: Reason ``APPROVAL_PENDING``, code
                ``DEADLINE_EXCEEDED``, when still undecided after ``timeout``.
            BatonError: For a refusal (unknown approval, not the caller's).
        """
        if token is not None:
            _agent_metadata(token, key, WATCH_APPROVAL_METHOD)  # a bad token fails before any wait

        def metadata() -> tuple[tuple[str, str], ...]:
            if token is None:
                return self._metadata
            return _agent_metadata(token, key, WATCH_APPROVAL_METHOD)

        return wait_for_decision(self._approvals.WatchApproval, metadata, approval_id, timeout)

    def issue_with_approval(
        self,
        task_id: str,
        scopes: Sequence[str],
        audiences: Sequence[str],
        *,
        approval_timeout: float = DEFAULT_APPROVAL_WAIT,
        on_approval_required: Callable[[ApprovalRequiredError], None] | None = None,
        **issue_args: Any,
    ) -> broker_pb2.IssueResponse:
        """:meth:`issue`, waiting for human approval when the app's policy needs it.

        On :class:`baton.ApprovalRequiredError`, calls
        ``on_approval_required`` with it (to tell the humans, say), waits
        (:meth:`wait_for_approval`, at most ``approval_timeout`` seconds) and
        issues again with the approval. A denied, expired or used approval
        raises what the broker says (an :class:`baton.ApprovalError`,
        ``APPROVAL_DENIED``...). ``issue_args`` are :meth:`issue`'s.
        """
        try:
            return self.issue(task_id, scopes, audiences, **issue_args)
        except ApprovalRequiredError as required:
            if not required.approval_id:
                raise
            if on_approval_required is not None:
                on_approval_required(required)
            self.wait_for_approval(required.approval_id, approval_timeout)
            issue_args["approval_id"] = required.approval_id
            return self.issue(task_id, scopes, audiences, **issue_args)

    def _call(
        self,
        method: Callable[..., _Response],
        request: Any,
        timeout: float | None,
        metadata: tuple[tuple[str, str], ...] | None = None,
    ) -> _Response:
        return call(
            method,
            request,
            self._timeout if timeout is None else timeout,
            self._metadata if metadata is None else metadata,
        )


#: One target of :meth:`BrokerClient.revoke_many`.
RevokeTarget = Union[
    broker_pb2.RevokeRequest,
    tuple[Union["broker_pb2.RevocationTarget", str], str],
    tuple[Union["broker_pb2.RevocationTarget", str], str, str],
]


def _target(target: broker_pb2.RevocationTarget | str) -> broker_pb2.RevocationTarget:
    """A ``RevocationTarget`` from itself or its name (with or without prefix)."""
    if isinstance(target, str):
        name = target.upper()
        if not name.startswith("REVOCATION_TARGET_"):
            name = "REVOCATION_TARGET_" + name
        # Value raises ValueError for an unknown name.
        return cast(broker_pb2.RevocationTarget, broker_pb2.RevocationTarget.Value(name))
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"a revocation target is a RevocationTarget or its name, not {type(target).__name__}")
    return target


def _revoke_request(item: Any, reason: str, index: int) -> broker_pb2.RevokeRequest:
    """One entry of revoke_many as a RevokeRequest (a copy: the caller's is left alone)."""
    if isinstance(item, broker_pb2.RevokeRequest):
        request = broker_pb2.RevokeRequest()
        request.CopyFrom(item)
    elif isinstance(item, tuple) and len(item) in (2, 3):
        ids = item[1:]
        if not all(isinstance(part, str) for part in ids):
            raise TypeError(f"targets[{index}]: the id and app_id are strings")
        request = broker_pb2.RevokeRequest(
            target=_target(item[0]), id=ids[0], app_id=ids[1] if len(ids) == 2 else ""
        )
    else:
        raise TypeError(
            f"targets[{index}] is a {type(item).__name__}; give a RevokeRequest or a "
            "(target, id) or (target, id, app_id) tuple"
        )
    if not request.reason:
        request.reason = reason
    return request


def _jwk_text(jwk: str | AgentKey) -> str:
    return jwk.public_jwk_json() if isinstance(jwk, AgentKey) else jwk


def _agent_metadata(
    token: str, key: AgentKey | None, method: str
) -> tuple[tuple[str, str], ...]:
    """The metadata of an agent's call: its token, and a new proof when keyed."""
    if not token:
        raise ValueError("the agent's token is required")
    metadata = bearer_metadata(token)
    if key is not None:
        # Made right before the call: the broker accepts a proof only once
        # and only within a few seconds of its iat.
        metadata += ((PROOF_METADATA_KEY, key.proof(method, token)),)
    return metadata
