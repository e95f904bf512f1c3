package baton_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Live tests of approvals, the clinical scenario: the operator
// (BATON_OPERATOR_TOKEN) gives a new app the policy `write:prescriptions:*`
// DANGEROUS_WRITE with one approval of `clinical-leads` and creates
// approvers; Issue is APPROVAL_REQUIRED; the approver approves;
// WaitForApproval returns APPROVED; the re-issue carries `apr` (offline
// Verifier and Validate); a second re-issue is APPROVAL_USED; a denial is
// APPROVAL_DENIED; dual control needs two distinct approvers. They need
// BATON_ADDR, BATON_OPERATOR_TOKEN and BATON_AUDIENCE (test/sdk/run-live.ts)
// and fail without them.

const liveRx = "write:prescriptions:P-1042"

type liveClinic struct {
	addr, audience string
	admin          *baton.AdminClient
	app            *baton.Client
	appID          string
	leads          []*baton.ApprovalClient
	leadIDs        []string
}

func startLiveClinic(t *testing.T, approvalsRequired uint32) *liveClinic {
	t.Helper()
	env := map[string]string{}
	for _, name := range []string{"BATON_ADDR", "BATON_OPERATOR_TOKEN", "BATON_AUDIENCE"} {
		if env[name] = os.Getenv(name); env[name] == "" {
			t.Fatalf("live approvals test needs %s (set by test/sdk/run-live.ts)", name)
		}
	}
	c := &liveClinic{addr: env["BATON_ADDR"], audience: env["BATON_AUDIENCE"]}
	admin, err := baton.DialAdmin(c.addr, env["BATON_OPERATOR_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	c.admin = admin
	suffix := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
	created, err := admin.CreateApp(t.Context(), &batonv1.CreateAppRequest{
		Name:         "clinic-go-" + suffix,
		ScopeCeiling: []string{"read:records:*", "write:prescriptions:*"},
		Audiences:    []string{c.audience},
		ApprovalPolicy: []*batonv1.ApprovalRule{{
			Pattern: "write:prescriptions:*", ScopeClass: batonv1.ScopeClass_SCOPE_CLASS_DANGEROUS_WRITE,
			ApprovalsRequired: approvalsRequired, ApproverGroup: "clinical-leads",
		}},
	})
	if err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	c.appID = created.GetApp().GetAppId()
	c.app = dialAs(t, map[string]string{"BATON_ADDR": c.addr}, c.appID, created.GetClientSecret())
	for i := range 2 {
		apv, err := admin.CreateApprover(t.Context(), &batonv1.CreateApproverRequest{Name: fmt.Sprintf("lead%d-%s", i, suffix), Groups: []string{"clinical-leads"}})
		if err != nil {
			t.Fatalf("CreateApprover: %v", err)
		}
		client, err := baton.DialApprovals(c.addr, apv.GetApprover().GetApproverId(), apv.GetClientSecret())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		c.leads = append(c.leads, client)
		c.leadIDs = append(c.leadIDs, apv.GetApprover().GetApproverId())
	}
	return c
}

func (c *liveClinic) rx(task, approvalID string) *batonv1.IssueRequest {
	return &batonv1.IssueRequest{TaskId: task, HumanPrincipal: "dr-house", Scopes: []string{liveRx}, Audiences: []string{c.audience}, ApprovalId: approvalID}
}

// required issues the request and returns the APPROVAL_REQUIRED refusal.
func (c *liveClinic) required(t *testing.T, task string) *baton.Error {
	t.Helper()
	_, err := c.app.Issue(t.Context(), c.rx(task, ""))
	if _, ok := baton.ApprovalRequired(err); !ok {
		t.Fatalf("Issue: %v, want APPROVAL_REQUIRED", err)
	}
	e, _ := baton.AsApprovalError(err)
	return e
}

// waitAsync runs WaitForApproval in the background.
func (c *liveClinic) waitAsync(t *testing.T, id string) <-chan *batonv1.Approval {
	ch := make(chan *batonv1.Approval, 1)
	go func() {
		a, err := c.app.WaitForApproval(context.Background(), id, 30*time.Second)
		if err != nil {
			t.Errorf("WaitForApproval: %v", err)
		}
		ch <- a
	}()
	return ch
}

func TestLiveApprovalClinicalScenario(t *testing.T) {
	c := startLiveClinic(t, 1)
	e := c.required(t, "visit-77")
	id := e.ApprovalID()
	if e.Code != codes.FailedPrecondition || e.ApprovalsRequired() != 1 || e.ApproverGroup() != "clinical-leads" || !e.ApprovalExpireTime().After(time.Now()) {
		t.Errorf("APPROVAL_REQUIRED: %v required %d group %q expire %v", e, e.ApprovalsRequired(), e.ApproverGroup(), e.ApprovalExpireTime())
	}
	var listed []string
	for a, err := range c.leads[0].AllApprovals(t.Context(), &batonv1.ListApprovalsRequest{State: batonv1.ApprovalState_APPROVAL_STATE_PENDING, AppId: c.appID}) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, a.GetApprovalId())
	}
	if !slices.Contains(listed, id) {
		t.Fatalf("pending approvals %v lack %s", listed, id)
	}
	waited := c.waitAsync(t, id)
	if r, err := c.leads[0].Approve(t.Context(), &batonv1.ApproveRequest{ApprovalId: id, Reason: "dose checked against weight"}); err != nil || r.GetApproval().GetState() != approved {
		t.Fatalf("Approve: %v, %v", r, err)
	}
	if a := <-waited; a.GetApprovalId() != id || a.GetState() != approved {
		t.Fatalf("WaitForApproval = %v", a)
	}

	issued, err := c.app.Issue(t.Context(), c.rx("visit-77", id))
	if err != nil {
		t.Fatalf("re-issue: %v", err)
	}
	want := []string{c.leadIDs[0]}
	if a := issued.GetClaims().GetApproval(); a.GetApprovalId() != id || !slices.Equal(a.GetApproverIds(), want) {
		t.Errorf("issued claims approval = %v", a)
	}
	v, err := baton.NewVerifier(baton.VerifierOptions{Audience: c.audience, Issuer: "https://baton.local", Keys: baton.KeySetFromClient(c.app), Revocations: alwaysFresh{}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if r := v.Verify(t.Context(), issued.GetAccessToken(), baton.VerifyOptions{}); !r.OK || r.Claims.Approval == nil || r.Claims.Approval.ApprovalID != id || !slices.Equal(r.Claims.Approval.ApproverIDs, want) {
		t.Errorf("offline Verify = %+v", r)
	}
	online, err := c.app.Validate(t.Context(), &batonv1.ValidateRequest{Token: issued.GetAccessToken(), Audience: c.audience})
	if err != nil || online.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_VALID || online.GetClaims().GetApproval().GetApprovalId() != id ||
		!slices.Equal(online.GetClaims().GetApproval().GetApproverIds(), want) {
		t.Errorf("Validate = %v, %v", online, err)
	}
	if a, err := c.app.GetApproval(t.Context(), id); err != nil || a.GetState() != batonv1.ApprovalState_APPROVAL_STATE_USED {
		t.Errorf("GetApproval = %v, %v", a, err)
	}
	_, err = c.app.Issue(t.Context(), c.rx("visit-77", id))
	if e, ok := baton.AsApprovalError(err); !ok || e.Reason != "APPROVAL_USED" || e.ApprovalID() != id {
		t.Errorf("second re-issue: %v, want APPROVAL_USED", err)
	}
}

func TestLiveApprovalDenied(t *testing.T) {
	c := startLiveClinic(t, 1)
	id := c.required(t, "visit-99").ApprovalID()
	waited := c.waitAsync(t, id)
	if _, err := c.leads[0].Deny(t.Context(), &batonv1.DenyRequest{ApprovalId: id, Reason: "wrong patient"}); err != nil {
		t.Fatal(err)
	}
	if a := <-waited; a.GetState() != denied {
		t.Fatalf("WaitForApproval = %v", a)
	}
	_, err := c.app.Issue(t.Context(), c.rx("visit-99", id))
	if e, ok := baton.AsApprovalError(err); !ok || e.Reason != "APPROVAL_DENIED" || e.Code != codes.PermissionDenied {
		t.Errorf("re-issue: %v, want APPROVAL_DENIED", err)
	}
}

func TestLiveApprovalDualControl(t *testing.T) {
	c := startLiveClinic(t, 2)
	e := c.required(t, "visit-dual")
	id := e.ApprovalID()
	if e.ApprovalsRequired() != 2 {
		t.Errorf("approvals required = %d", e.ApprovalsRequired())
	}
	var onRequired []string
	done := make(chan error, 1)
	go func() {
		_, err := c.app.WaitForApproval(context.Background(), id, 30*time.Second)
		done <- err
	}()
	if r, err := c.leads[0].Approve(t.Context(), &batonv1.ApproveRequest{ApprovalId: id, Reason: "first look"}); err != nil || r.GetApproval().GetState() != pending {
		t.Fatalf("first Approve: %v, %v", r, err)
	}
	_, err := c.leads[0].Approve(t.Context(), &batonv1.ApproveRequest{ApprovalId: id, Reason: "me again"})
	if e, ok := baton.AsApprovalError(err); !ok || e.Reason != "APPROVAL_NOT_PENDING" {
		t.Errorf("same approver twice: %v", err)
	}
	if r, err := c.leads[1].Approve(t.Context(), &batonv1.ApproveRequest{ApprovalId: id, Reason: "second look"}); err != nil || r.GetApproval().GetState() != approved {
		t.Fatalf("second Approve: %v, %v", r, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	issued, err := c.app.Issue(t.Context(), c.rx("visit-dual", id))
	if err != nil || !slices.Equal(issued.GetClaims().GetApproval().GetApproverIds(), c.leadIDs) {
		t.Fatalf("re-issue: %v, %v", issued.GetClaims().GetApproval(), err)
	}

	// IssueWithApproval: the approvers decide while it waits.
	resp, err := c.app.IssueWithApproval(t.Context(), c.rx("visit-dual-2", ""), 30*time.Second, func(e *baton.Error) {
		onRequired = append(onRequired, e.ApprovalID())
		go func() {
			for i, lead := range c.leads {
				if _, err := lead.Approve(context.Background(), &batonv1.ApproveRequest{ApprovalId: e.ApprovalID(), Reason: fmt.Sprintf("look %d", i)}); err != nil {
					t.Errorf("Approve: %v", err)
				}
			}
		}()
	})
	if err != nil || len(onRequired) != 1 || resp.GetClaims().GetApproval().GetApprovalId() != onRequired[0] {
		t.Fatalf("IssueWithApproval = %v, %v (told %v)", resp.GetClaims().GetApproval(), err, onRequired)
	}
	var names []string
	for a, err := range c.admin.AllApprovers(t.Context(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, a.GetApproverId())
	}
	for _, id := range c.leadIDs {
		if !slices.Contains(names, id) {
			t.Errorf("AllApprovers lacks %s", id)
		}
	}
}

// alwaysFresh is a revocation view that revokes nothing and is always
// fresh: the live tests check the claims the verifier decodes.
type alwaysFresh struct{}

func (alwaysFresh) IsRevoked(baton.RevocationFacts) bool { return false }
func (alwaysFresh) FreshAt() time.Time                   { return time.Now() }
