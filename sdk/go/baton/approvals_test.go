package baton_test

// Approvals in the Go SDK against fake Broker and Approval services over
// bufconn (real gRPC): APPROVAL_* refusals recognised with their metadata,
// WaitForApproval following a broken stream again and timing out clearly, a
// fresh proof per stream for an agent, IssueWithApproval, reason checks, and
// claim `apr` in the offline verifier. The live flow is approvals_live_test.go.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

func refusal(code codes.Code, reason string, md map[string]string) error {
	st, err := status.New(code, "refused: "+reason).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: baton.ErrorDomain, Metadata: md})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// watchScript is one WatchApproval subscription: states sent, then the end
// (nil: the stream ends; errHang: it stays open; else that error).
type watchScript struct {
	states []batonv1.ApprovalState
	end    error
}

var errHang = errors.New("hang")

type fakeApprovals struct {
	batonv1.UnimplementedBrokerServiceServer
	batonv1.UnimplementedApprovalServiceServer

	mu            sync.Mutex
	issueRefusals []error
	issued        []*batonv1.IssueRequest
	watches       []watchScript
	watchMD       []metadata.MD
	decided       []string
}

func (f *fakeApprovals) Issue(_ context.Context, req *batonv1.IssueRequest) (*batonv1.IssueResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued = append(f.issued, req)
	if len(f.issueRefusals) > 0 {
		err := f.issueRefusals[0]
		f.issueRefusals = f.issueRefusals[1:]
		return nil, err
	}
	return &batonv1.IssueResponse{AccessToken: "tok"}, nil
}

func (f *fakeApprovals) WatchApproval(req *batonv1.WatchApprovalRequest, s grpc.ServerStreamingServer[batonv1.WatchApprovalResponse]) error {
	md, _ := metadata.FromIncomingContext(s.Context())
	f.mu.Lock()
	f.watchMD = append(f.watchMD, md)
	w := watchScript{end: errHang}
	if len(f.watches) > 0 {
		w, f.watches = f.watches[0], f.watches[1:]
	}
	f.mu.Unlock()
	for _, st := range w.states {
		if err := s.Send(&batonv1.WatchApprovalResponse{Approval: &batonv1.Approval{ApprovalId: req.GetApprovalId(), State: st}}); err != nil {
			return err
		}
	}
	if w.end == errHang {
		<-s.Context().Done()
		return nil
	}
	return w.end
}

func (f *fakeApprovals) GetApproval(ctx context.Context, req *batonv1.GetApprovalRequest) (*batonv1.GetApprovalResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.watchMD = append(f.watchMD, md)
	f.mu.Unlock()
	return &batonv1.GetApprovalResponse{Approval: &batonv1.Approval{ApprovalId: req.GetApprovalId()}}, nil
}

func (f *fakeApprovals) Deny(_ context.Context, req *batonv1.DenyRequest) (*batonv1.DenyResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decided = append(f.decided, req.GetReason())
	return &batonv1.DenyResponse{Approval: &batonv1.Approval{ApprovalId: req.GetApprovalId(), State: batonv1.ApprovalState_APPROVAL_STATE_DENIED}}, nil
}

func (f *fakeApprovals) Approve(_ context.Context, req *batonv1.ApproveRequest) (*batonv1.ApproveResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decided = append(f.decided, req.GetReason())
	return &batonv1.ApproveResponse{Approval: &batonv1.Approval{ApprovalId: req.GetApprovalId(), State: batonv1.ApprovalState_APPROVAL_STATE_APPROVED}}, nil
}

func (f *fakeApprovals) ListApprovals(_ context.Context, req *batonv1.ListApprovalsRequest) (*batonv1.ListApprovalsResponse, error) {
	if req.GetPageToken() == "" {
		return &batonv1.ListApprovalsResponse{Approvals: []*batonv1.Approval{{ApprovalId: "apr_a", State: req.GetState()}}, NextPageToken: "p2"}, nil
	}
	return &batonv1.ListApprovalsResponse{Approvals: []*batonv1.Approval{{ApprovalId: "apr_b", State: req.GetState()}}}, nil
}

func startApprovalsFake(t *testing.T) (*fakeApprovals, *baton.Client, *baton.ApprovalClient) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	fake := &fakeApprovals{}
	batonv1.RegisterBrokerServiceServer(srv, fake)
	batonv1.RegisterApprovalServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	dialer := baton.WithDialOptions(grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	client, err := baton.Dial("passthrough:///bufnet", baton.WithBasicAuth("app_x", "s"), dialer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	approver, err := baton.DialApprovals("passthrough:///bufnet", "apv_1", "secret", dialer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = approver.Close() })
	return fake, client, approver
}

const (
	pending  = batonv1.ApprovalState_APPROVAL_STATE_PENDING
	approved = batonv1.ApprovalState_APPROVAL_STATE_APPROVED
	denied   = batonv1.ApprovalState_APPROVAL_STATE_DENIED
)

func TestApprovalRequiredIsRecognisedWithItsMetadata(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	fake.issueRefusals = []error{refusal(codes.FailedPrecondition, "APPROVAL_REQUIRED", map[string]string{
		"approval_id": "apr_7", "approvals_required": "2", "approver_group": "clinical-leads", "expire_time": "2026-12-03T11:00:00.000Z",
	})}
	_, err := client.Issue(t.Context(), &batonv1.IssueRequest{TaskId: "t"})
	id, ok := baton.ApprovalRequired(err)
	if !ok || id != "apr_7" {
		t.Fatalf("ApprovalRequired = %q, %v; err %v", id, ok, err)
	}
	e, ok := baton.AsApprovalError(err)
	if !ok || e.Code != codes.FailedPrecondition || e.ApprovalsRequired() != 2 || e.ApproverGroup() != "clinical-leads" ||
		!e.ApprovalExpireTime().Equal(time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("got %v: required %d group %q expire %v", e, e.ApprovalsRequired(), e.ApproverGroup(), e.ApprovalExpireTime())
	}

	fake.issueRefusals = []error{refusal(codes.FailedPrecondition, "APPROVAL_REQUIRED", map[string]string{"approval_id": "apr_7", "approvals_required": "two", "expire_time": "soon"})}
	_, err = client.Issue(t.Context(), &batonv1.IssueRequest{TaskId: "t"})
	e, _ = baton.AsApprovalError(err)
	if e.ApprovalsRequired() != 0 || e.ApproverGroup() != "" || !e.ApprovalExpireTime().IsZero() {
		t.Errorf("unreadable metadata: %d %q %v", e.ApprovalsRequired(), e.ApproverGroup(), e.ApprovalExpireTime())
	}
}

func TestOtherApprovalReasons(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	for _, tc := range []struct {
		code   codes.Code
		reason string
	}{
		{codes.FailedPrecondition, "APPROVAL_PENDING"}, {codes.PermissionDenied, "APPROVAL_DENIED"},
		{codes.FailedPrecondition, "APPROVAL_EXPIRED"}, {codes.FailedPrecondition, "APPROVAL_USED"},
		{codes.PermissionDenied, "APPROVAL_MISMATCH"}, {codes.FailedPrecondition, "APPROVAL_NOT_PENDING"},
	} {
		fake.issueRefusals = []error{refusal(tc.code, tc.reason, map[string]string{"approval_id": "apr_9"})}
		_, err := client.Issue(t.Context(), &batonv1.IssueRequest{TaskId: "t", ApprovalId: "apr_9"})
		e, ok := baton.AsApprovalError(err)
		if !ok || e.Code != tc.code || e.Reason != tc.reason || e.ApprovalID() != "apr_9" {
			t.Errorf("%s: AsApprovalError = %v, %v", tc.reason, e, ok)
		}
		if _, required := baton.ApprovalRequired(err); required {
			t.Errorf("%s: ApprovalRequired true", tc.reason)
		}
	}
	fake.issueRefusals = []error{refusal(codes.PermissionDenied, "SCOPE_NOT_COVERED", nil)}
	_, err := client.Issue(t.Context(), &batonv1.IssueRequest{TaskId: "t"})
	if _, ok := baton.AsApprovalError(err); ok || err == nil {
		t.Errorf("SCOPE_NOT_COVERED recognised as an approval error: %v", err)
	}
	if got := fake.issued[0].GetApprovalId(); got != "apr_9" {
		t.Errorf("approval id sent = %q", got)
	}
}

func TestWaitFollowsABrokenStreamUntilApproved(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	fake.watches = []watchScript{
		{[]batonv1.ApprovalState{pending}, status.Error(codes.Unavailable, "restarting")},
		{[]batonv1.ApprovalState{pending}, nil},
		{[]batonv1.ApprovalState{pending, approved}, errHang},
	}
	a, err := client.WaitForApproval(t.Context(), "apr_4", 20*time.Second)
	if err != nil || a.GetApprovalId() != "apr_4" || a.GetState() != approved {
		t.Fatalf("WaitForApproval = %v, %v", a, err)
	}
	if len(fake.watchMD) != 3 {
		t.Errorf("%d subscriptions, want 3", len(fake.watchMD))
	}
	if got := fake.watchMD[0].Get("authorization"); len(got) != 1 || !strings.HasPrefix(got[0], "Basic ") {
		t.Errorf("authorization = %v", got)
	}
}

func proofHTM(t *testing.T, proof string) string {
	t.Helper()
	parts := strings.Split(proof, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Htm string }
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.Htm
}

func TestAgentWaitsWithAFreshProofPerStream(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	fake.watches = []watchScript{{nil, nil}, {[]batonv1.ApprovalState{denied}, errHang}}
	a, err := client.WaitForApproval(t.Context(), "apr_5", 20*time.Second, baton.AsAgent("agent-token", key))
	if err != nil || a.GetState() != denied {
		t.Fatalf("WaitForApproval = %v, %v", a, err)
	}
	var proofs []string
	for _, md := range fake.watchMD {
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer agent-token" {
			t.Errorf("authorization = %v", got)
		}
		proofs = append(proofs, md.Get(baton.ProofMetadataKey)...)
	}
	if len(proofs) != 2 || proofs[0] == proofs[1] {
		t.Fatalf("proofs = %d, want 2 distinct", len(proofs))
	}
	for _, p := range proofs {
		if htm := proofHTM(t, p); htm != batonv1.ApprovalService_WatchApproval_FullMethodName {
			t.Errorf("htm = %q", htm)
		}
	}
	if _, err := client.GetApproval(t.Context(), "apr_5", baton.AsAgent("agent-token", key)); err != nil {
		t.Fatal(err)
	}
	last := fake.watchMD[len(fake.watchMD)-1].Get(baton.ProofMetadataKey)
	if len(last) != 1 || proofHTM(t, last[0]) != batonv1.ApprovalService_GetApproval_FullMethodName {
		t.Errorf("GetApproval proof = %v", last)
	}
}

func TestWaitTimesOutClearly(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	fake.watches = []watchScript{{[]batonv1.ApprovalState{pending}, errHang}}
	_, err := client.WaitForApproval(t.Context(), "apr_6", 300*time.Millisecond)
	e, ok := baton.AsApprovalError(err)
	if !ok || e.Code != codes.DeadlineExceeded || e.Reason != "APPROVAL_PENDING" || e.ApprovalID() != "apr_6" {
		t.Fatalf("err = %v", err)
	}
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "apr_6 was not decided within 300ms") {
		t.Errorf("err = %v", err)
	}
}

func TestWaitDoesNotFollowARefusalAgain(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	fake.watches = []watchScript{{nil, refusal(codes.NotFound, "NOT_FOUND", nil)}}
	_, err := client.WaitForApproval(t.Context(), "apr_missing", 20*time.Second)
	if status.Code(err) != codes.NotFound || len(fake.watchMD) != 1 {
		t.Fatalf("err = %v after %d subscriptions", err, len(fake.watchMD))
	}
	if _, err := client.WaitForApproval(t.Context(), "", time.Second); err == nil {
		t.Error("an empty approval id was accepted")
	}
}

func TestWaitStopsWhenTheCallerCancels(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	fake.watches = []watchScript{{[]batonv1.ApprovalState{pending}, errHang}}
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := client.WaitForApproval(ctx, "apr_7", 20*time.Second)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestIssueWithApproval(t *testing.T) {
	fake, client, _ := startApprovalsFake(t)
	fake.issueRefusals = []error{refusal(codes.FailedPrecondition, "APPROVAL_REQUIRED", map[string]string{"approval_id": "apr_8", "approvals_required": "1"})}
	fake.watches = []watchScript{{[]batonv1.ApprovalState{pending, approved}, errHang}}
	var told []string
	req := &batonv1.IssueRequest{TaskId: "t", Scopes: []string{"write:prescriptions:P-1042"}}
	resp, err := client.IssueWithApproval(t.Context(), req, 20*time.Second, func(e *baton.Error) { told = append(told, e.ApprovalID()) })
	if err != nil || resp.GetAccessToken() != "tok" {
		t.Fatalf("IssueWithApproval = %v, %v", resp, err)
	}
	if len(told) != 1 || told[0] != "apr_8" || len(fake.issued) != 2 || fake.issued[0].GetApprovalId() != "" || fake.issued[1].GetApprovalId() != "apr_8" {
		t.Errorf("told %v, issued %v", told, fake.issued)
	}
	if req.GetApprovalId() != "" {
		t.Error("the caller's request was modified")
	}
}

func TestApproverReasonsAreCheckedFirst(t *testing.T) {
	fake, _, approver := startApprovalsFake(t)
	for _, reason := range []string{"", "   ", strings.Repeat("x", 513)} {
		if _, err := approver.Deny(t.Context(), &batonv1.DenyRequest{ApprovalId: "apr_1", Reason: reason}); !errors.Is(err, baton.ErrInvalidReason) {
			t.Errorf("Deny(%d chars) = %v", len(reason), err)
		}
		if _, err := approver.Approve(t.Context(), &batonv1.ApproveRequest{ApprovalId: "apr_1", Reason: reason}); !errors.Is(err, baton.ErrInvalidReason) {
			t.Errorf("Approve(%d chars) = %v", len(reason), err)
		}
	}
	if len(fake.decided) != 0 {
		t.Fatalf("sent %d decisions", len(fake.decided))
	}
	// 512 characters of two bytes each are within the limit.
	if r, err := approver.Deny(t.Context(), &batonv1.DenyRequest{ApprovalId: "apr_1", Reason: strings.Repeat("é", 512)}); err != nil || r.GetApproval().GetState() != denied {
		t.Fatalf("Deny = %v, %v", r, err)
	}
	if r, err := approver.Approve(t.Context(), &batonv1.ApproveRequest{ApprovalId: "apr_1", Reason: "dose checked"}); err != nil || r.GetApproval().GetState() != approved {
		t.Fatalf("Approve = %v, %v", r, err)
	}
	var ids []string
	for a, err := range approver.AllApprovals(t.Context(), &batonv1.ListApprovalsRequest{State: pending}) {
		if err != nil {
			t.Fatal(err)
		}
		if a.GetState() != pending {
			t.Errorf("state filter not sent: %v", a.GetState())
		}
		ids = append(ids, a.GetApprovalId())
	}
	if strings.Join(ids, ",") != "apr_a,apr_b" {
		t.Errorf("AllApprovals = %v", ids)
	}
}

func TestVerifierExposesApr(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow}
	v, _ := newVerifier(t, keys, view, func() time.Time { return testNow })
	r := v.Verify(t.Context(), keys.sign(t, esHeader(), with(baseClaims(), "apr", map[string]any{"id": "apr_1", "by": []string{"apv_1", "apv_2"}})), baton.VerifyOptions{})
	if !r.OK || r.Claims.Approval == nil || r.Claims.Approval.ApprovalID != "apr_1" || strings.Join(r.Claims.Approval.ApproverIDs, ",") != "apv_1,apv_2" {
		t.Fatalf("Verify = %+v", r)
	}
	if r := v.Verify(t.Context(), keys.sign(t, esHeader(), baseClaims()), baton.VerifyOptions{}); !r.OK || r.Claims.Approval != nil {
		t.Errorf("no apr: %+v", r)
	}
	for name, apr := range map[string]any{
		"string":         "apr_1",
		"no by":          map[string]any{"id": "apr_1"},
		"numeric id":     map[string]any{"id": 1, "by": []string{}},
		"numeric by":     map[string]any{"id": "apr_1", "by": []any{"apv_1", 2}},
		"empty approver": map[string]any{"id": "apr_1", "by": []string{""}},
	} {
		if r := v.Verify(t.Context(), keys.sign(t, esHeader(), with(baseClaims(), "apr", apr)), baton.VerifyOptions{}); r.OK || r.Reason != baton.ReasonMalformed {
			t.Errorf("%s: Verify = %v, want MALFORMED", name, r)
		}
	}
}
