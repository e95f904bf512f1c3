"""RevocationSet matching rules and scope coverage, table-driven.

The rules mirror the broker's (server/domain/revocations.ts): a token is
revoked by its own id or any lineage id (TOKEN), its agent or any ancestor's
agent (AGENT), its chain's root token id (CHAIN), or its app (APP) or app
and task (TASK) when the chain's root was issued at or before the
revocation. A seeded random comparison against a direct reading of the
rules covers the combinations the tables do not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

import baton
from baton import LineageFacts, RevocationSet
from baton.v1 import broker_pb2

T = broker_pb2.RevocationTarget
TOKEN, AGENT, TASK, CHAIN, APP = (
    broker_pb2.REVOCATION_TARGET_TOKEN,
    broker_pb2.REVOCATION_TARGET_AGENT,
    broker_pb2.REVOCATION_TARGET_TASK,
    broker_pb2.REVOCATION_TARGET_CHAIN,
    broker_pb2.REVOCATION_TARGET_APP,
)

NOW_MS = 1_800_000_000_000


@dataclass(frozen=True)
class Facts:
    token_id: str = "child"
    agent_id: str = "agent-child"
    app_id: str = "app"
    task_id: str = "task"
    lineage: tuple[LineageFacts, ...] = field(
        default=(LineageFacts("root", "agent-root"), LineageFacts("mid", "agent-mid"))
    )
    root_issued_at_ms: int = NOW_MS - 60_000


APP_ISSUED = Facts(token_id="root", agent_id="agent-root", lineage=())


def revocation(
    target: int,
    target_id: str,
    app_id: str = "app",
    revoked_ms: int = NOW_MS,
    expires_ms: int | None = NOW_MS + 3_600_000,
    cursor: str = "1",
) -> broker_pb2.Revocation:
    r = broker_pb2.Revocation(target=target, id=target_id, app_id=app_id, cursor=cursor)
    r.revoke_time.FromMilliseconds(revoked_ms)
    if expires_ms is not None:
        r.expire_time.FromMilliseconds(expires_ms)
    return r


MATCHES = [
    # (name, revocation, facts, revoked)
    ("token: its own id", revocation(TOKEN, "child"), Facts(), True),
    ("token: the root ancestor", revocation(TOKEN, "root"), Facts(), True),
    ("token: a middle ancestor", revocation(TOKEN, "mid"), Facts(), True),
    ("token: an unrelated id", revocation(TOKEN, "other"), Facts(), False),
    ("token: a descendant does not revoke its parent", revocation(TOKEN, "child"), APP_ISSUED, False),
    ("token: an agent id is not a token id", revocation(TOKEN, "agent-child"), Facts(), False),
    ("agent: its own agent", revocation(AGENT, "agent-child"), Facts(), True),
    ("agent: the root's agent", revocation(AGENT, "agent-root"), Facts(), True),
    ("agent: a middle agent", revocation(AGENT, "agent-mid"), Facts(), True),
    ("agent: another agent", revocation(AGENT, "agent-other"), Facts(), False),
    ("agent: a token id is not an agent id", revocation(AGENT, "child"), Facts(), False),
    ("chain: the root token id", revocation(CHAIN, "root"), Facts(), True),
    ("chain: the root itself, app-issued", revocation(CHAIN, "root"), APP_ISSUED, True),
    ("chain: a middle id is no chain root", revocation(CHAIN, "mid"), Facts(), False),
    ("chain: its own id when delegated", revocation(CHAIN, "child"), Facts(), False),
    ("app: root issued before", revocation(APP, "app"), Facts(), True),
    ("app: root issued at the same ms", revocation(APP, "app", revoked_ms=NOW_MS - 60_000), Facts(), True),
    ("app: root issued 1 ms after", revocation(APP, "app", revoked_ms=NOW_MS - 60_001), Facts(), False),
    ("app: another app", revocation(APP, "app2", app_id="app2"), Facts(), False),
    ("task: root issued before", revocation(TASK, "task"), Facts(), True),
    ("task: root issued after (task id reused)", revocation(TASK, "task", revoked_ms=NOW_MS - 120_000), Facts(), False),
    ("task: same task id of another app", revocation(TASK, "task", app_id="app2"), Facts(), False),
    ("task: another task", revocation(TASK, "task-2"), Facts(), False),
    ("task: an app-issued token", revocation(TASK, "task"), APP_ISSUED, True),
    (
        "task: judged by the root's issue time, not the child's",
        revocation(TASK, "task", revoked_ms=NOW_MS - 30_000),
        Facts(root_issued_at_ms=NOW_MS - 60_000),
        True,
    ),
    ("unspecified target: ignored", revocation(broker_pb2.REVOCATION_TARGET_UNSPECIFIED, "child"), Facts(), False),
]


@pytest.mark.parametrize(("name", "rev", "facts", "revoked"), MATCHES, ids=[m[0] for m in MATCHES])
def test_matching_rules(name: str, rev: broker_pb2.Revocation, facts: Facts, revoked: bool) -> None:
    s = RevocationSet()
    s.add(rev)
    assert s.is_revoked(facts) is revoked, name


def test_unknown_target_is_not_added() -> None:
    s = RevocationSet()
    assert not s.add(revocation(broker_pb2.REVOCATION_TARGET_UNSPECIFIED, "x"))
    assert len(s) == 0


def test_a_task_revoked_twice_keeps_both_times_and_dedupes_by_cursor() -> None:
    s = RevocationSet()
    early = revocation(TASK, "task", revoked_ms=NOW_MS - 120_000, cursor="1")
    late = revocation(TASK, "task", revoked_ms=NOW_MS, cursor="2")
    s.add(early)
    s.add(early)  # replayed after a snapshot: not a second entry
    assert len(s) == 1
    assert not s.is_revoked(Facts())
    s.add(late)
    assert len(s) == 2
    assert s.is_revoked(Facts())


def test_prune_forgets_only_what_expired() -> None:
    s = RevocationSet()
    s.add(revocation(TOKEN, "a", expires_ms=NOW_MS - 1))
    s.add(revocation(TOKEN, "b", expires_ms=NOW_MS + 1))
    s.add(revocation(TASK, "task", expires_ms=NOW_MS - 1, cursor="3"))
    s.add(revocation(APP, "app", expires_ms=None, cursor="4"))  # no expiry: kept for ever
    # The same id revoked again later: the latest expiry wins.
    s.add(revocation(AGENT, "agent-x", expires_ms=NOW_MS - 1))
    s.add(revocation(AGENT, "agent-x", expires_ms=NOW_MS + 10))
    assert len(s) == 5
    assert s.prune(NOW_MS) == 2
    assert len(s) == 3
    assert s.is_revoked(Facts(token_id="b", lineage=()))
    assert not s.is_revoked(Facts(token_id="a", app_id="app-z", lineage=()))
    assert s.is_revoked(Facts(agent_id="agent-x", app_id="app-z", lineage=()))
    assert s.prune(NOW_MS + 11 * 365 * 86_400_000) == 2  # b and agent-x; the app entry stays
    assert len(s) == 1


def test_set_matches_a_direct_reading_of_the_rules_random() -> None:
    """Seeded: deterministic, many combinations, and no extra dependency."""
    rng = random.Random(20240611)
    ids = ["t1", "t2", "t3", "t4"]
    agents = ["a1", "a2", "a3"]
    apps = ["p1", "p2"]
    tasks = ["k1", "k2"]
    targets = [TOKEN, AGENT, TASK, CHAIN, APP]
    for _ in range(300):
        revs = []
        for i in range(rng.randint(0, 5)):
            target = rng.choice(targets)
            app = rng.choice(apps)
            target_id = {
                TOKEN: rng.choice(ids),
                CHAIN: rng.choice(ids),
                AGENT: rng.choice(agents),
                TASK: rng.choice(tasks),
                APP: app,
            }[target]
            revs.append(revocation(target, target_id, app, NOW_MS + rng.randint(-3, 3), cursor=str(i)))
        s = RevocationSet()
        for r in revs:
            s.add(r)
        for _ in range(10):
            depth = rng.randint(0, 3)
            lineage = tuple(LineageFacts(rng.choice(ids), rng.choice(agents)) for _ in range(depth))
            f = Facts(
                token_id=rng.choice(ids),
                agent_id=rng.choice(agents),
                app_id=rng.choice(apps),
                task_id=rng.choice(tasks),
                lineage=lineage,
                root_issued_at_ms=NOW_MS + rng.randint(-3, 3),
            )
            token_ids = {f.token_id, *(a.token_id for a in lineage)}
            agent_ids = {f.agent_id, *(a.agent_id for a in lineage)}
            root = lineage[0].token_id if lineage else f.token_id
            expected = any(
                (r.target == TOKEN and r.id in token_ids)
                or (r.target == AGENT and r.id in agent_ids)
                or (r.target == CHAIN and r.id == root)
                or (
                    r.target == APP
                    and r.app_id == f.app_id
                    and f.root_issued_at_ms <= r.revoke_time.ToMilliseconds()
                )
                or (
                    r.target == TASK
                    and r.app_id == f.app_id
                    and r.id == f.task_id
                    and f.root_issued_at_ms <= r.revoke_time.ToMilliseconds()
                )
                for r in revs
            )
            assert s.is_revoked(f) is expected, (revs, f)


COVERAGE = [
    # (granted, requested, covered)
    ("read:records:P-1", "read:records:P-1", True),
    ("read:records:*", "read:records:P-1", True),
    ("read:*:*", "read:records:P-1", True),
    ("*:*:*", "write:notes:n-9", True),
    ("*:records:P-1", "delete:records:P-1", True),
    ("read:records:P-1", "read:records:P-2", False),
    ("read:records:P-1", "write:records:P-1", False),
    ("read:records:P-1", "read:notes:P-1", False),
    # A requested wildcard is covered only by a wildcard.
    ("read:records:P-1", "read:records:*", False),
    ("read:records:*", "read:records:*", True),
    ("read:records:P-1", "*:records:P-1", False),
    # The identifier is everything after the second colon, colons included.
    ("read:files:a:b", "read:files:a:b", True),
    ("read:files:*", "read:files:a:b", True),
    ("read:files:a", "read:files:a:b", False),
    # No prefix matching, case-sensitive.
    ("read:records:P", "read:records:P-1", False),
    ("Read:records:P-1", "read:records:P-1", False),
    # Malformed on either side: nothing.
    ("read:records", "read:records:P-1", False),
    ("read::P-1", "read::P-1", False),
    ("read:records:", "read:records:", False),
    (":records:P-1", ":records:P-1", False),
]


@pytest.mark.parametrize(("granted", "requested", "covered"), COVERAGE)
def test_scope_coverage(granted: str, requested: str, covered: bool) -> None:
    assert baton.scope_covers(granted, requested) is covered


def test_parse_scope_splits_on_the_first_two_colons() -> None:
    assert baton.parse_scope("read:files:a:b") == baton.Scope("read", "files", "a:b")
    for bad in ("", "read", "read:x", "read:x:", ":x:y", "r::y"):
        assert baton.parse_scope(bad) is None, bad


def test_uncovered_scopes() -> None:
    granted = ["read:records:*", "write:notes:n-1"]
    assert baton.uncovered_scopes(granted, ["read:records:P-1", "write:notes:n-1"]) == []
    assert baton.uncovered_scopes(granted, ["write:notes:n-2", "read:records:*", "bad"]) == [
        "write:notes:n-2",
        "bad",
    ]


def test_uncovered_scopes_refuses_a_single_string() -> None:
    # Read as characters, "read:records:*" would cover nothing and "bad"
    # would come back as ["b", "a", "d"].
    with pytest.raises(TypeError, match="granted"):
        baton.uncovered_scopes("read:records:*", ["read:records:P-1"])
    with pytest.raises(TypeError, match="required"):
        baton.uncovered_scopes(["read:records:*"], "read:records:P-1")
