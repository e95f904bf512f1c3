package baton

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// DefaultTimeout is the deadline given to a unary call whose context has
// none.
const DefaultTimeout = 5 * time.Second

// Client is a connection to a broker. The embedded BrokerServiceClient's
// methods (Issue, Validate, Revoke, ...) send the credentials given to
// [Dial] (or, for one call, those of a grpc.PerRPCCredentials call option
// such as [AsAgent], instead), get [DefaultTimeout] (or [WithTimeout]) as deadline when the
// context has none, and return errors as [*Error].
//
// A Client is safe for concurrent use; Close it when done.
type Client struct {
	batonv1.BrokerServiceClient

	conn *grpc.ClientConn
}

// Option configures [Dial].
type Option func(*options)

type options struct {
	perRPC    credentials.PerRPCCredentials
	transport credentials.TransportCredentials
	timeout   time.Duration
	dialOpts  []grpc.DialOption
}

// WithBasicAuth authenticates every call as an app (see [BasicAuth]).
func WithBasicAuth(clientID, clientSecret string) Option {
	return func(o *options) { o.perRPC = BasicAuth(clientID, clientSecret) }
}

// WithBearerToken authenticates every call as an agent or an operator (see
// [BearerToken]).
func WithBearerToken(token string) Option {
	return func(o *options) { o.perRPC = BearerToken(token) }
}

// WithTimeout sets the deadline of unary calls whose context has none.
// Zero or less means no default deadline.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// WithTransportCredentials sets the transport security, for example
// credentials.NewTLS(&tls.Config{}). The default is plaintext, for a broker
// on loopback or behind a TLS-terminating proxy on the same host: anything
// else must use TLS, since the credentials travel on every call.
func WithTransportCredentials(c credentials.TransportCredentials) Option {
	return func(o *options) { o.transport = c }
}

// WithDialOptions adds gRPC dial options (keepalive, interceptors, ...).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Dial returns a Client for the broker at target (`host:port`, or any gRPC
// target URI). It does not wait for the connection: the first call does.
// It fails with a [*TokenTooLongError] when the credentials' bearer token is
// longer than [MaxTokenLength].
func Dial(target string, opts ...Option) (*Client, error) {
	conn, err := dial(target, opts)
	if err != nil {
		return nil, err
	}
	return &Client{BrokerServiceClient: batonv1.NewBrokerServiceClient(conn), conn: conn}, nil
}

// dial makes the connection of a [Client] or an [AdminClient]: credentials,
// default deadline and error conversion on every call.
func dial(target string, opts []Option) (*grpc.ClientConn, error) {
	o := options{transport: insecure.NewCredentials(), timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if err := checkCredentials(o.perRPC); err != nil {
		return nil, err
	}
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(o.transport),
		grpc.WithChainUnaryInterceptor(unaryInterceptor(o.timeout)),
		grpc.WithChainStreamInterceptor(streamInterceptor),
	}
	if o.perRPC != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(dialCredentials{o.perRPC}))
	}
	return grpc.NewClient(target, append(dialOpts, o.dialOpts...)...)
}

// Conn returns the underlying connection, for other services of the broker.
// Calls on it get the same credentials, deadline and error conversion. For
// the admin service, prefer [DialAdmin] (or [Client.Admin] on a Client
// dialled with the operator token).
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection. Calls in flight fail with codes.Canceled.
func (c *Client) Close() error { return c.conn.Close() }

// unaryInterceptor applies the default deadline, keeps the Client's
// credentials off a call that brings its own, and converts errors.
func unaryInterceptor(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, err := withCallCredentials(ctx, opts)
		if err != nil {
			return err
		}
		if _, ok := ctx.Deadline(); !ok && timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return FromError(invoker(ctx, method, req, reply, cc, opts...))
	}
}

// streamInterceptor converts the errors of stream calls and, like
// unaryInterceptor, keeps the Client's credentials off a call that brings its
// own. Streams get no default deadline: a revocation stream is meant to stay
// open.
func streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := withCallCredentials(ctx, opts)
	if err != nil {
		return nil, err
	}
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, FromError(err)
	}
	return errorStream{s}, nil
}

// errorStream converts the errors a stream's messages end with.
type errorStream struct{ grpc.ClientStream }

func (s errorStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if errors.Is(err, io.EOF) {
		return err
	}
	return FromError(err)
}

func (s errorStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if errors.Is(err, io.EOF) {
		return err
	}
	return FromError(err)
}
