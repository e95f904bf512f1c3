package baton

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// ErrorDomain is the `google.rpc.ErrorInfo` domain of Baton's errors.
const ErrorDomain = "baton.dev"

// reasonPrefix is what ErrorInfo reasons drop from ErrorReason value names.
const reasonPrefix = "ERROR_REASON_"

// Error is an error returned by the broker, or by gRPC on the way to it.
//
// Use errors.As to get one from an error returned by a [Client] call.
// status.Code and status.FromError keep working on it.
type Error struct {
	// Code is the gRPC status code.
	Code codes.Code
	// Reason is the ErrorInfo reason, a batonv1.ErrorReason value name
	// without the `ERROR_REASON_` prefix (for example "SCOPE_NOT_COVERED").
	// Empty when the error carries no Baton ErrorInfo, as for a deadline
	// exceeded or a broker that cannot be reached.
	Reason string
	// Metadata is the ErrorInfo metadata, naming the offending input (for
	// example "excess_scopes"). Never nil.
	Metadata map[string]string
	// Message is the gRPC status message.
	Message string
	// RetryAfter is the wait the broker asks for before a retry, from the
	// status's google.rpc.RetryInfo (RATE_LIMITED, AUTHENTICATION_THROTTLED);
	// zero when the status carries none.
	RetryAfter time.Duration

	status *status.Status
}

// Error implements error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("baton: ")
	b.WriteString(e.Code.String())
	if e.Reason != "" {
		b.WriteString(" ")
		b.WriteString(e.Reason)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// GRPCStatus returns the status the error was built from, so that
// status.Code(err) and status.FromError(err) work on an *Error.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// ErrorReason returns Reason as a batonv1.ErrorReason, or
// ERROR_REASON_UNSPECIFIED when the reason is empty or unknown to this SDK.
func (e *Error) ErrorReason() batonv1.ErrorReason {
	return batonv1.ErrorReason(batonv1.ErrorReason_value[reasonPrefix+e.Reason])
}

// FromError converts an error returned by a gRPC call to an *Error. It
// returns nil for nil, and err itself when err is already an *Error or is
// not a gRPC status error (a context error from before the call started,
// for example).
func FromError(err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{
		Code:     st.Code(),
		Metadata: map[string]string{},
		Message:  st.Message(),
		status:   st,
	}
	gotInfo := false
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			if gotInfo || d.GetDomain() != ErrorDomain {
				continue
			}
			gotInfo = true
			e.Reason = d.GetReason()
			for k, v := range d.GetMetadata() {
				e.Metadata[k] = v
			}
		case *errdetails.RetryInfo:
			// A negative or malformed delay is ignored rather than passed
			// on as a wait.
			if delay := d.GetRetryDelay(); delay.IsValid() && delay.AsDuration() > 0 {
				e.RetryAfter = delay.AsDuration()
			}
		}
	}
	return e
}

// MaxTokenLength is the longest bearer token the SDK sends, in bytes (a
// token is ASCII, so characters): the broker's limit, 16 KiB. The broker
// answers oversized request metadata by closing the whole connection
// (HTTP/2 GOAWAY), failing every call in flight on it, so a longer token is
// refused here with a [*TokenTooLongError] before anything is sent. A
// [Verifier] refuses such a token as MALFORMED.
const MaxTokenLength = 16384

// TokenTooLongError is returned, before anything is sent, for credentials
// whose bearer token is longer than [MaxTokenLength]: by [Dial] and
// [NewSubscriber] for their credentials, by a call for the credentials of
// its call option ([AsAgent], grpc.PerRPCCredentials with [BearerToken]).
// It never contains the token.
type TokenTooLongError struct {
	// Length is the token's length in bytes.
	Length int
}

// Error implements error.
func (e *TokenTooLongError) Error() string {
	return fmt.Sprintf("baton: the bearer token is %d bytes, over MaxTokenLength (%d): not sent", e.Length, MaxTokenLength)
}

// checkToken refuses a bearer token longer than MaxTokenLength.
func checkToken(token string) error {
	if len(token) > MaxTokenLength {
		return &TokenTooLongError{Length: len(token)}
	}
	return nil
}

// bearerCredentials are the SDK's credentials that send a bearer token.
type bearerCredentials interface{ bearerToken() string }

// checkCredentials refuses the SDK's bearer credentials when their token is
// too long; other credentials pass.
func checkCredentials(c credentials.PerRPCCredentials) error {
	if b, ok := c.(bearerCredentials); ok {
		return checkToken(b.bearerToken())
	}
	return nil
}

// ReasonOf returns the ErrorInfo reason string of an ErrorReason, for
// comparing with [Error.Reason].
func ReasonOf(r batonv1.ErrorReason) string {
	return strings.TrimPrefix(r.String(), reasonPrefix)
}

// ---- Approvals (issue 8) ----

// approvalReasons are the ErrorInfo reasons about one approval.
var approvalReasons = map[string]bool{
	"APPROVAL_REQUIRED":    true,
	"APPROVAL_PENDING":     true,
	"APPROVAL_DENIED":      true,
	"APPROVAL_EXPIRED":     true,
	"APPROVAL_USED":        true,
	"APPROVAL_MISMATCH":    true,
	"APPROVAL_NOT_PENDING": true,
}

// ApprovalRequired reports whether err is an APPROVAL_REQUIRED refusal: a
// requested scope needs human approval under the app's policy, nothing was
// minted and a pending approval was created. It returns that approval's id;
// wait for it ([Client.WaitForApproval]) and send the same request again
// with ApprovalId set (or use [Client.IssueWithApproval]). The [*Error]
// (errors.As) has the rest: [Error.ApprovalsRequired], [Error.ApproverGroup],
// [Error.ApprovalExpireTime].
func ApprovalRequired(err error) (approvalID string, ok bool) {
	var e *Error
	if !errors.As(err, &e) || e.Reason != "APPROVAL_REQUIRED" {
		return "", false
	}
	return e.ApprovalID(), true
}

// AsApprovalError returns the [*Error] in err when its reason concerns one
// approval: APPROVAL_REQUIRED, APPROVAL_PENDING, APPROVAL_DENIED,
// APPROVAL_EXPIRED, APPROVAL_USED, APPROVAL_MISMATCH or APPROVAL_NOT_PENDING
// ([Error.ApprovalID] names it). [Client.WaitForApproval] times out with
// APPROVAL_PENDING and codes.DeadlineExceeded.
func AsApprovalError(err error) (*Error, bool) {
	var e *Error
	if !errors.As(err, &e) || !approvalReasons[e.Reason] {
		return nil, false
	}
	return e, true
}

// ApprovalID is the approval the error concerns (metadata `approval_id`);
// "" when none.
func (e *Error) ApprovalID() string { return e.Metadata["approval_id"] }

// ApprovalsRequired is how many distinct approvers must approve (metadata
// `approvals_required` of APPROVAL_REQUIRED); 0 when absent or unreadable.
func (e *Error) ApprovalsRequired() int {
	n, err := strconv.Atoi(e.Metadata["approvals_required"])
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// ApproverGroup is the group whose members may decide (metadata
// `approver_group` of APPROVAL_REQUIRED).
func (e *Error) ApproverGroup() string { return e.Metadata["approver_group"] }

// ApprovalExpireTime is when the approval expires if not decided and used
// (metadata `expire_time` of APPROVAL_REQUIRED); the zero time when absent
// or unreadable.
func (e *Error) ApprovalExpireTime() time.Time {
	t, err := time.Parse(time.RFC3339Nano, e.Metadata["expire_time"])
	if err != nil {
		return time.Time{}
	}
	return t
}
