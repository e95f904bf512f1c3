package baton

import (
	"context"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// AdminClient is a connection to a broker's AdminService, for an operator.
// The embedded AdminServiceClient's methods (CreateApp, GetApp, ListApps,
// UpdateApp, DisableApp, RotateAppSecret, CreateResourceServer,
// ListResourceServers, DisableResourceServer, ListSigningKeys,
// RotateSigningKey, VerifyAuditLog, ListAuditEvents) get the same treatment as a [Client]'s:
// the credentials given to [DialAdmin], [DefaultTimeout] (or [WithTimeout])
// as deadline when the context has none, and errors as [*Error]. Every
// admin call needs the operator credential; anything else is refused
// (UNAUTHENTICATED or PERMISSION_DENIED).
//
// A secret in a response (CreateAppResponse.ClientSecret, ...) is returned
// once: store it, never log it.
//
// An AdminClient is safe for concurrent use; Close it when done.
type AdminClient struct {
	batonv1.AdminServiceClient

	conn *grpc.ClientConn
}

// DialAdmin returns an AdminClient for the broker at target that
// authenticates every call with the operator credential, `authorization:
// Bearer <operatorToken>`. It accepts the options of [Dial] (a credentials
// option there replaces the operator token). Like Dial, it does not wait
// for the connection.
func DialAdmin(target, operatorToken string, opts ...Option) (*AdminClient, error) {
	conn, err := dial(target, append([]Option{WithBearerToken(operatorToken)}, opts...))
	if err != nil {
		return nil, err
	}
	return &AdminClient{AdminServiceClient: batonv1.NewAdminServiceClient(conn), conn: conn}, nil
}

// Admin returns an AdminClient on c's connection and credentials, for a
// Client dialled with the operator token (WithBearerToken). Closing either
// closes the shared connection.
func (c *Client) Admin() *AdminClient {
	return &AdminClient{AdminServiceClient: batonv1.NewAdminServiceClient(c.conn), conn: c.conn}
}

// Conn returns the underlying connection, for other services of the broker
// (batonv1.NewBrokerServiceClient(admin.Conn()) makes broker calls as the
// operator, for example RevokeMany).
func (c *AdminClient) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection. Calls in flight fail with codes.Canceled.
func (c *AdminClient) Close() error { return c.conn.Close() }

// AllApps iterates over every app, calling ListApps page by page (pageSize
// apps per call; 0 lets the broker choose). The iteration stops at the
// first error, which it yields with a nil app.
//
//	for app, err := range admin.AllApps(ctx, 100) {
//		if err != nil { ... }
//		...
//	}
func (c *AdminClient) AllApps(ctx context.Context, pageSize uint32) iter.Seq2[*batonv1.App, error] {
	return paginate(func(token string) ([]*batonv1.App, string, error) {
		r, err := c.ListApps(ctx, &batonv1.ListAppsRequest{PageSize: pageSize, PageToken: token})
		return r.GetApps(), r.GetNextPageToken(), err
	})
}

// AllResourceServers iterates over every resource server, like [AdminClient.AllApps].
func (c *AdminClient) AllResourceServers(ctx context.Context, pageSize uint32) iter.Seq2[*batonv1.ResourceServer, error] {
	return paginate(func(token string) ([]*batonv1.ResourceServer, string, error) {
		r, err := c.ListResourceServers(ctx, &batonv1.ListResourceServersRequest{PageSize: pageSize, PageToken: token})
		return r.GetResourceServers(), r.GetNextPageToken(), err
	})
}

// AllAuditEvents iterates over every audit event matching filter, oldest
// first, calling ListAuditEvents page by page with filter's fields (its
// PageSize per call, 0 letting the broker choose; its PageToken, if set,
// where to resume). filter is not modified; nil matches every event. The
// iteration stops at the first error, which it yields with a nil event.
//
//	filter := &batonv1.ListAuditEventsRequest{TaskId: "visit-77", Kinds: []string{"token.issued"}}
//	for event, err := range admin.AllAuditEvents(ctx, filter) {
//		if err != nil { ... }
//		...
//	}
func (c *AdminClient) AllAuditEvents(ctx context.Context, filter *batonv1.ListAuditEventsRequest) iter.Seq2[*batonv1.AuditEvent, error] {
	req := &batonv1.ListAuditEventsRequest{}
	if filter != nil {
		req = proto.Clone(filter).(*batonv1.ListAuditEventsRequest)
	}
	first := req.GetPageToken()
	return paginateFrom(first, func(token string) ([]*batonv1.AuditEvent, string, error) {
		req.PageToken = token
		r, err := c.ListAuditEvents(ctx, req)
		return r.GetEvents(), r.GetNextPageToken(), err
	})
}

// paginate yields the items of page after page until a page has no next
// page token.
func paginate[T any](page func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return paginateFrom("", page)
}

// paginateFrom is paginate starting at the page of token.
func paginateFrom[T any](token string, page func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		token := token
		for {
			items, next, err := page(token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			token = next
		}
	}
}
