"""The claims of a renewed token, offline (issue 8).

``rnw`` names the token a renewed one replaced (``renewed_from_token_id``);
``root_iat`` without a lineage (a renewed root) is the chain's start, so task
and app revocations issued after the line began but before the renewal
still match. A mistyped one is MALFORMED.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import timestamp_pb2
from jws_helpers import AUDIENCE, ISSUER, SigningKey, b64json, b64url, claims
from test_verifier import NOW, Clock, FakeView, KeySource

from baton import TokenVerifier, VerifyFailureReason
from baton.v1 import broker_pb2


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("k-es", "ES256")


@pytest.fixture
def view() -> FakeView:
    return FakeView()


@pytest.fixture
def verifier(key: SigningKey, view: FakeView) -> TokenVerifier:
    v = TokenVerifier(AUDIENCE, ISSUER, keys=KeySource(key), revocations=view, now=Clock())
    v.load_keys()
    return v


def _signed(key: SigningKey, payload: dict[str, Any]) -> str:
    header = b64json({"alg": "ES256", "typ": "at+jwt", "kid": key.kid})
    signing_input = f"{header}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(key.raw_signature(signing_input.encode()))}"


def test_a_renewed_root_exposes_rnw_and_its_line_start(verifier: TokenVerifier, key: SigningKey) -> None:
    result = verifier.verify(key.sign(claims(NOW, rnw="tok_old", root_iat=NOW - 3600.25)))
    assert result.ok, result
    assert result.claims is not None
    assert result.claims.renewed_from_token_id == "tok_old"
    assert result.claims.root_issued_at_ms == round((NOW - 3600.25) * 1000)
    plain = verifier.verify(key.sign(claims(NOW)))
    assert plain.claims is not None and plain.claims.renewed_from_token_id is None


def test_a_task_revocation_after_the_line_began_covers_the_renewed_token(
    verifier: TokenVerifier, key: SigningKey, view: FakeView
) -> None:
    token = key.sign(claims(NOW, rnw="tok_old", root_iat=NOW - 60))
    revoke_time = timestamp_pb2.Timestamp()
    revoke_time.FromMilliseconds(round((NOW - 30) * 1000))
    expire_time = timestamp_pb2.Timestamp()
    expire_time.FromMilliseconds(round((NOW + 3600) * 1000))
    view.set.add(
        broker_pb2.Revocation(
            target=broker_pb2.REVOCATION_TARGET_TASK, id="task-1", app_id="app_1",
            revoke_time=revoke_time, expire_time=expire_time, cursor="1",
        )
    )
    assert verifier.verify(token).reason == VerifyFailureReason.REVOKED


@pytest.mark.parametrize("overrides", [{"rnw": ""}, {"rnw": 7}, {"rnw": ["x"]}, {"root_iat": "x"}, {"root_iat": -1}])
def test_mistyped_renewal_claims_are_malformed(verifier: TokenVerifier, key: SigningKey, overrides: dict[str, Any]) -> None:
    payload = claims(NOW)
    payload.update(overrides)
    assert verifier.verify(_signed(key, payload)).reason == VerifyFailureReason.MALFORMED
