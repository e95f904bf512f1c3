package baton

import (
	"math"
	"time"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Ancestor is one ancestor of a delegated token: its token id (`jti`) and
// agent id (`sub`).
type Ancestor struct {
	TokenID string
	AgentID string
}

// RevocationFacts is what a revocation check needs of a token. [Claims]
// embeds it.
type RevocationFacts struct {
	// TokenID is `jti`.
	TokenID string
	// AgentID is `sub`: the agent.
	AgentID string
	// AppID is `client_id`: the app of the chain's root.
	AppID string
	// TaskID is the task id.
	TaskID string
	// Lineage is the ancestors, root first; empty for a token issued by an
	// app.
	Lineage []Ancestor
	// RootIssuedAt is when the chain's root was issued (`root_iat`, or `iat`
	// without it; a renewed token keeps its line's start), to the
	// millisecond.
	RootIssuedAt time.Time
}

// rootTokenID is the id of the chain's root: the first ancestor, or the
// token itself.
func (f RevocationFacts) rootTokenID() string {
	if len(f.Lineage) > 0 {
		return f.Lineage[0].TokenID
	}
	return f.TokenID
}

// never is the expiry of a revocation without expire_time: it cannot be
// proven harmless, so it is kept.
const never = int64(math.MaxInt64)

type timedEntry struct {
	revokedAtMs int64
	expiresAtMs int64
	cursor      string
}

// RevocationSet is a set of revocations, indexed so that a check costs
// O(lineage). A token is revoked when its own id or an ancestor's id
// (TOKEN), its agent or an ancestor's agent (AGENT), its chain's root token
// id (CHAIN), or its app (APP) or app and task (TASK) for a chain rooted at
// or before the revocation, matches an entry: the broker's rules (DESIGN
// §6).
//
// A RevocationSet is not safe for concurrent use; [Subscriber] guards its
// own.
type RevocationSet struct {
	// id -> the latest expiry (ms) among revocations of that id
	tokens map[string]int64
	agents map[string]int64
	chains map[string]int64
	// key -> entries: a task or an app may be revoked more than once
	tasks map[taskKey][]timedEntry
	apps  map[string][]timedEntry
}

type taskKey struct{ appID, taskID string }

// NewRevocationSet returns an empty set.
func NewRevocationSet() *RevocationSet {
	return &RevocationSet{
		tokens: map[string]int64{},
		agents: map[string]int64{},
		chains: map[string]int64{},
		tasks:  map[taskKey][]timedEntry{},
		apps:   map[string][]timedEntry{},
	}
}

// Len returns the number of entries held.
func (s *RevocationSet) Len() int {
	n := len(s.tokens) + len(s.agents) + len(s.chains)
	for _, l := range s.tasks {
		n += len(l)
	}
	for _, l := range s.apps {
		n += len(l)
	}
	return n
}

// Add adds a revocation. It returns false when r is nil or its target is
// unknown to this SDK (nothing could match it).
func (s *RevocationSet) Add(r *batonv1.Revocation) bool {
	if r == nil {
		return false
	}
	exp := never
	if r.GetExpireTime() != nil {
		exp = r.GetExpireTime().AsTime().UnixMilli()
	}
	var revokedAt int64
	if r.GetRevokeTime() != nil {
		revokedAt = r.GetRevokeTime().AsTime().UnixMilli()
	}
	e := timedEntry{revokedAtMs: revokedAt, expiresAtMs: exp, cursor: r.GetCursor()}
	switch r.GetTarget() {
	case batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN:
		keepLatest(s.tokens, r.GetId(), exp)
	case batonv1.RevocationTarget_REVOCATION_TARGET_AGENT:
		keepLatest(s.agents, r.GetId(), exp)
	case batonv1.RevocationTarget_REVOCATION_TARGET_CHAIN:
		keepLatest(s.chains, r.GetId(), exp)
	case batonv1.RevocationTarget_REVOCATION_TARGET_TASK:
		k := taskKey{r.GetAppId(), r.GetId()}
		s.tasks[k] = appendEntry(s.tasks[k], e)
	case batonv1.RevocationTarget_REVOCATION_TARGET_APP:
		s.apps[r.GetAppId()] = appendEntry(s.apps[r.GetAppId()], e)
	default:
		return false
	}
	return true
}

// IsRevoked reports whether some entry matches the token (see
// [RevocationSet]).
func (s *RevocationSet) IsRevoked(t RevocationFacts) bool {
	if s == nil {
		return false
	}
	if has(s.tokens, t.TokenID) || has(s.agents, t.AgentID) {
		return true
	}
	for _, a := range t.Lineage {
		if has(s.tokens, a.TokenID) || has(s.agents, a.AgentID) {
			return true
		}
	}
	if has(s.chains, t.rootTokenID()) {
		return true
	}
	root := t.RootIssuedAt.UnixMilli()
	return revokedBefore(s.apps[t.AppID], root) || revokedBefore(s.tasks[taskKey{t.AppID, t.TaskID}], root)
}

// Prune forgets the entries whose every possible match expired before now,
// and returns how many.
func (s *RevocationSet) Prune(now time.Time) int {
	if s == nil {
		return 0
	}
	nowMs := now.UnixMilli()
	removed := 0
	for _, m := range []map[string]int64{s.tokens, s.agents, s.chains} {
		for k, exp := range m {
			if exp < nowMs {
				delete(m, k)
				removed++
			}
		}
	}
	for k, l := range s.tasks {
		kept, n := pruneEntries(l, nowMs)
		removed += n
		if len(kept) == 0 {
			delete(s.tasks, k)
		} else {
			s.tasks[k] = kept
		}
	}
	for k, l := range s.apps {
		kept, n := pruneEntries(l, nowMs)
		removed += n
		if len(kept) == 0 {
			delete(s.apps, k)
		} else {
			s.apps[k] = kept
		}
	}
	return removed
}

func has(m map[string]int64, k string) bool {
	_, ok := m[k]
	return ok
}

func keepLatest(m map[string]int64, k string, exp int64) {
	if prev, ok := m[k]; !ok || exp > prev {
		m[k] = exp
	}
}

// appendEntry adds e unless an entry with the same cursor is there (the
// same revocation received twice, from a snapshot and a replay).
func appendEntry(l []timedEntry, e timedEntry) []timedEntry {
	for _, x := range l {
		if x.cursor == e.cursor {
			return l
		}
	}
	return append(l, e)
}

func pruneEntries(l []timedEntry, nowMs int64) ([]timedEntry, int) {
	kept := l[:0:0]
	for _, e := range l {
		if e.expiresAtMs >= nowMs {
			kept = append(kept, e)
		}
	}
	return kept, len(l) - len(kept)
}

// revokedBefore: some entry was revoked at or after the chain's root was
// issued (so a task id reused later is not poisoned).
func revokedBefore(l []timedEntry, rootIssuedAtMs int64) bool {
	for _, e := range l {
		if rootIssuedAtMs <= e.revokedAtMs {
			return true
		}
	}
	return false
}
