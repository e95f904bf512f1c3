package baton

// Approvals (issue 8). An Issue or Delegate for a scope the app's policy says
// needs human approval fails with APPROVAL_REQUIRED ([ApprovalRequired])
// naming a new pending approval. Approvers (named humans with `apv_...`
// credentials, created with AdminService.CreateApprover) list it, approve or
// deny it with a reason ([ApprovalClient]); the requester follows it
// ([Client.WaitForApproval]) and, once APPROVED, sends the same request
// again with ApprovalId set.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// DefaultApprovalWait is how long [Client.WaitForApproval] waits when given
// no timeout: the broker's default approval window, 15 minutes.
const DefaultApprovalWait = 15 * time.Minute

// MaxDecisionReasonLength is the longest approve or deny reason the broker
// accepts, in characters.
const MaxDecisionReasonLength = 512

// ErrInvalidReason is returned, before anything is sent, by
// [ApprovalClient.Approve] and [ApprovalClient.Deny] for a reason that is
// blank or longer than [MaxDecisionReasonLength] characters: the audit
// trail records why.
var ErrInvalidReason = errors.New("baton: a decision's reason must be 1 to 512 characters")

// The first and the longest pause before following an approval again after
// its stream broke.
const (
	resubscribeBase = 200 * time.Millisecond
	resubscribeMax  = 5 * time.Second
)

// IsTerminal reports whether an approval is decided for good: APPROVED,
// DENIED, EXPIRED or USED.
func IsTerminal(a *batonv1.Approval) bool {
	switch a.GetState() {
	case batonv1.ApprovalState_APPROVAL_STATE_APPROVED, batonv1.ApprovalState_APPROVAL_STATE_DENIED,
		batonv1.ApprovalState_APPROVAL_STATE_EXPIRED, batonv1.ApprovalState_APPROVAL_STATE_USED:
		return true
	}
	return false
}

// resubscribable reports whether a stream failure is worth following again:
// the broker restarting, a proxy dropping the stream, a passing limit.
func resubscribable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}

// waitForDecision follows an approval through WatchApproval until it is
// decided for good, following it again after a pause when the stream breaks
// or ends early. Each stream is a new call, so an agent's credentials
// (AsAgent) make a fresh proof for each.
func waitForDecision(ctx context.Context, svc batonv1.ApprovalServiceClient, approvalID string, timeout time.Duration, opts []grpc.CallOption) (*batonv1.Approval, error) {
	if approvalID == "" {
		return nil, errors.New("baton: an approval id is required")
	}
	if timeout <= 0 {
		timeout = DefaultApprovalWait
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pause := resubscribeBase
	for {
		a, err := watchOnce(ctx, svc, approvalID, opts)
		if a != nil {
			return a, nil
		}
		if parent.Err() != nil && !errors.Is(parent.Err(), context.DeadlineExceeded) {
			return nil, parent.Err()
		}
		if ctx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
			msg := fmt.Sprintf("approval %s was not decided within %v", approvalID, timeout)
			return nil, &Error{
				Code:     codes.DeadlineExceeded,
				Reason:   "APPROVAL_PENDING",
				Metadata: map[string]string{"approval_id": approvalID},
				Message:  msg,
				status:   status.New(codes.DeadlineExceeded, msg),
			}
		}
		wait := pause
		var e *Error
		if err != nil {
			if !errors.As(err, &e) || !resubscribable(e.Code) {
				return nil, err
			}
			wait = max(wait, e.RetryAfter)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		pause = min(pause*2, resubscribeMax)
	}
}

// watchOnce follows one WatchApproval stream: the approval once decided, or
// (nil, nil) when the stream ended before, or the stream's error.
func watchOnce(ctx context.Context, svc batonv1.ApprovalServiceClient, approvalID string, opts []grpc.CallOption) (*batonv1.Approval, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := svc.WatchApproval(ctx, &batonv1.WatchApprovalRequest{ApprovalId: approvalID}, opts...)
	if err != nil {
		return nil, err
	}
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if IsTerminal(r.GetApproval()) {
			return r.GetApproval(), nil
		}
	}
}

// Approvals returns an [ApprovalClient] on c's connection and credentials:
// for an app following its own approvals (GetApproval, WatchApproval), or,
// with [AsAgent] on each call, for an agent following the approval of its
// delegation. Closing either closes the shared connection.
func (c *Client) Approvals() *ApprovalClient {
	return &ApprovalClient{ApprovalServiceClient: batonv1.NewApprovalServiceClient(c.conn), conn: c.conn}
}

// GetApproval returns one approval the caller asked for, with the Client's
// credentials or those of opts ([AsAgent] for an agent: a proof for
// GetApproval is attached when the token is key-bound).
func (c *Client) GetApproval(ctx context.Context, approvalID string, opts ...grpc.CallOption) (*batonv1.Approval, error) {
	r, err := batonv1.NewApprovalServiceClient(c.conn).GetApproval(ctx, &batonv1.GetApprovalRequest{ApprovalId: approvalID}, opts...)
	if err != nil {
		return nil, err
	}
	return r.GetApproval(), nil
}

// WaitForApproval waits, through WatchApproval, until the approval is
// decided for good, and returns it: APPROVED (send the same request again
// with ApprovalId), DENIED, EXPIRED or USED. A broken stream is followed
// again. timeout bounds the whole wait (0: [DefaultApprovalWait]); past it
// the error is an [*Error] with reason APPROVAL_PENDING and
// codes.DeadlineExceeded. Credentials as for [Client.GetApproval]; an
// agent's key-bound token gets a fresh proof for each stream.
func (c *Client) WaitForApproval(ctx context.Context, approvalID string, timeout time.Duration, opts ...grpc.CallOption) (*batonv1.Approval, error) {
	return waitForDecision(ctx, batonv1.NewApprovalServiceClient(c.conn), approvalID, timeout, opts)
}

// IssueWithApproval is Issue that, when the app's policy says the request
// needs human approval, calls onRequired (may be nil; to tell the humans,
// say) with the APPROVAL_REQUIRED error, waits for the decision
// ([Client.WaitForApproval], at most approvalTimeout) and issues again with
// the approval. A denied, expired or used approval fails as the broker
// says (APPROVAL_DENIED, ...). req is not modified.
func (c *Client) IssueWithApproval(ctx context.Context, req *batonv1.IssueRequest, approvalTimeout time.Duration, onRequired func(*Error), opts ...grpc.CallOption) (*batonv1.IssueResponse, error) {
	resp, err := c.Issue(ctx, req, opts...)
	id, required := ApprovalRequired(err)
	if !required || id == "" {
		return resp, err
	}
	if onRequired != nil {
		e, _ := AsApprovalError(err)
		onRequired(e)
	}
	if _, err := c.WaitForApproval(ctx, id, approvalTimeout, opts...); err != nil {
		return nil, err
	}
	again := proto.Clone(req).(*batonv1.IssueRequest)
	again.ApprovalId = id
	return c.Issue(ctx, again, opts...)
}

// ApprovalClient is a connection to a broker's ApprovalService. The
// embedded ApprovalServiceClient's methods (ListApprovals, GetApproval,
// WatchApproval, Approve, Deny) get the same treatment as a [Client]'s:
// credentials, [DefaultTimeout] on unary calls whose context has none, and
// errors as [*Error]. Approve and Deny check the reason first.
//
// Approvers dial with [DialApprovals] (their `apv_...` id and secret); an
// operator may list, read and follow approvals but never decide them.
type ApprovalClient struct {
	batonv1.ApprovalServiceClient

	conn *grpc.ClientConn
}

// DialApprovals returns an ApprovalClient for the broker at target that
// authenticates every call as the approver (`authorization: Basic`, its
// `apv_...` id and secret). It accepts the options of [Dial] (a credentials
// option there replaces the approver's).
func DialApprovals(target, approverID, approverSecret string, opts ...Option) (*ApprovalClient, error) {
	conn, err := dial(target, append([]Option{WithBasicAuth(approverID, approverSecret)}, opts...))
	if err != nil {
		return nil, err
	}
	return &ApprovalClient{ApprovalServiceClient: batonv1.NewApprovalServiceClient(conn), conn: conn}, nil
}

// Close closes the connection. Calls in flight fail with codes.Canceled.
func (a *ApprovalClient) Close() error { return a.conn.Close() }

// Approve records the approver's approval, after checking the reason
// ([ErrInvalidReason], nothing sent).
func (a *ApprovalClient) Approve(ctx context.Context, req *batonv1.ApproveRequest, opts ...grpc.CallOption) (*batonv1.ApproveResponse, error) {
	if err := checkReason(req.GetReason()); err != nil {
		return nil, err
	}
	return a.ApprovalServiceClient.Approve(ctx, req, opts...)
}

// Deny denies the approval at once, after checking the reason
// ([ErrInvalidReason], nothing sent).
func (a *ApprovalClient) Deny(ctx context.Context, req *batonv1.DenyRequest, opts ...grpc.CallOption) (*batonv1.DenyResponse, error) {
	if err := checkReason(req.GetReason()); err != nil {
		return nil, err
	}
	return a.ApprovalServiceClient.Deny(ctx, req, opts...)
}

// WaitForApproval waits until the approval is decided for good; see
// [Client.WaitForApproval].
func (a *ApprovalClient) WaitForApproval(ctx context.Context, approvalID string, timeout time.Duration, opts ...grpc.CallOption) (*batonv1.Approval, error) {
	return waitForDecision(ctx, a.ApprovalServiceClient, approvalID, timeout, opts)
}

// AllApprovals iterates over every approval matching req (its PageToken is
// ignored), calling ListApprovals page by page. The iteration stops at the
// first error, which it yields with a nil approval.
func (a *ApprovalClient) AllApprovals(ctx context.Context, req *batonv1.ListApprovalsRequest) iter.Seq2[*batonv1.Approval, error] {
	return paginate(func(token string) ([]*batonv1.Approval, string, error) {
		page := proto.Clone(req).(*batonv1.ListApprovalsRequest)
		if page == nil {
			page = &batonv1.ListApprovalsRequest{}
		}
		page.PageToken = token
		r, err := a.ListApprovals(ctx, page)
		return r.GetApprovals(), r.GetNextPageToken(), err
	})
}

// AllApprovers iterates over every approver, like [AdminClient.AllApps].
func (c *AdminClient) AllApprovers(ctx context.Context, pageSize uint32) iter.Seq2[*batonv1.Approver, error] {
	return paginate(func(token string) ([]*batonv1.Approver, string, error) {
		r, err := c.ListApprovers(ctx, &batonv1.ListApproversRequest{PageSize: pageSize, PageToken: token})
		return r.GetApprovers(), r.GetNextPageToken(), err
	})
}

func checkReason(reason string) error {
	if strings.TrimSpace(reason) == "" || utf8.RuneCountInString(reason) > MaxDecisionReasonLength {
		return ErrInvalidReason
	}
	return nil
}
