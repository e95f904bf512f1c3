package baton_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Live test of ListAuditEvents and AllAuditEvents (environment as for
// liveAdminConfig).

func TestLiveAuditEvents(t *testing.T) {
	cfg := liveAdminConfig(t)
	admin := dialAdmin(t, cfg)
	app := dialApp(t, cfg)
	ctx := t.Context()
	task := liveTaskID("audit")
	human := "user:" + task
	var tokens []string
	for range 3 {
		issued, err := app.Issue(ctx, &batonv1.IssueRequest{
			TaskId: task, HumanPrincipal: human, Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]},
		})
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		tokens = append(tokens, issued.GetClaims().GetTokenId())
	}

	filter := &batonv1.ListAuditEventsRequest{TaskId: task, Kinds: []string{"token.issued"}, PageSize: 2}
	first, err := admin.ListAuditEvents(ctx, filter)
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	if got := tokenIDs(first.GetEvents()); !slices.Equal(got, tokens[:2]) || first.GetNextPageToken() == "" {
		t.Fatalf("first page = %v (next %q), want %v and a next page", got, first.GetNextPageToken(), tokens[:2])
	}
	e := first.GetEvents()[0]
	if e.GetActor() != "app:"+cfg["BATON_CLIENT_ID"] || e.GetHumanPrincipal() != human || e.GetOutcome() != "ok" || e.GetCredentialLifetime().GetSeconds() <= 0 {
		t.Errorf("event = %v, want actor app:%s, human %s, outcome ok, a lifetime", e, cfg["BATON_CLIENT_ID"], human)
	}

	var walked []*batonv1.AuditEvent
	for event, err := range admin.AllAuditEvents(ctx, &batonv1.ListAuditEventsRequest{HumanPrincipal: human, PageSize: 1}) {
		if err != nil {
			t.Fatalf("AllAuditEvents: %v", err)
		}
		walked = append(walked, event)
	}
	if got := tokenIDs(walked); !slices.Equal(got, tokens) {
		t.Errorf("AllAuditEvents(human) = %v, want %v", got, tokens)
	}
	if filter.GetPageToken() != "" {
		t.Errorf("AllAuditEvents changed the caller's filter")
	}
	// Resuming from a page token, with a time window and after_seq.
	now := time.Now()
	var rest []*batonv1.AuditEvent
	for event, err := range admin.AllAuditEvents(ctx, &batonv1.ListAuditEventsRequest{
		TaskId: task, Kinds: []string{"token.issued"}, PageSize: 2, PageToken: first.GetNextPageToken(),
	}) {
		if err != nil {
			t.Fatalf("AllAuditEvents(from a page token): %v", err)
		}
		rest = append(rest, event)
	}
	if got := tokenIDs(rest); !slices.Equal(got, tokens[2:]) {
		t.Errorf("AllAuditEvents(from page 2) = %v, want %v", got, tokens[2:])
	}
	windowed, err := admin.ListAuditEvents(ctx, &batonv1.ListAuditEventsRequest{
		TaskId: task, AfterSeq: walked[0].GetSeq(),
		StartTime: timestamppb.New(now.Add(-time.Hour)), EndTime: timestamppb.New(now.Add(time.Minute)),
	})
	if err != nil {
		t.Fatalf("ListAuditEvents(window): %v", err)
	}
	if got := tokenIDs(windowed.GetEvents()); !slices.Equal(got, tokens[1:]) {
		t.Errorf("window after seq %d = %v, want %v", walked[0].GetSeq(), got, tokens[1:])
	}

	// A page token continues only its own query; the iterator yields the error once.
	var berr *baton.Error
	errs := 0
	for event, err := range admin.AllAuditEvents(ctx, &batonv1.ListAuditEventsRequest{TaskId: "other", PageToken: first.GetNextPageToken()}) {
		errs++
		if event != nil || !errors.As(err, &berr) || berr.Reason != "INVALID_REQUEST" {
			t.Errorf("AllAuditEvents(mismatched token) = %v, %v; want nil and INVALID_REQUEST", event, err)
		}
	}
	if errs != 1 {
		t.Errorf("AllAuditEvents(mismatched token) yielded %d times, want 1", errs)
	}
}

func tokenIDs(events []*batonv1.AuditEvent) []string {
	ids := []string{}
	for _, e := range events {
		ids = append(ids, e.GetTokenId())
	}
	return ids
}
