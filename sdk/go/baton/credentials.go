package baton

import (
	"context"
	"encoding/base64"

	"google.golang.org/grpc/credentials"
)

// BasicAuth returns per-RPC credentials that authenticate an app with its
// client id and secret: `authorization: Basic base64(id ":" secret)`. A
// resource server's id (`rs_...`) and secret work the same way, for
// Validate (of the audiences it serves) and StreamRevocations.
//
// They do not demand a secure transport, so that a broker on loopback can be
// reached in plaintext; choose the transport with [WithTransportCredentials].
func BasicAuth(clientID, clientSecret string) credentials.PerRPCCredentials {
	raw := clientID + ":" + clientSecret
	return staticAuth("Basic " + base64.StdEncoding.EncodeToString([]byte(raw)))
}

// BearerToken returns per-RPC credentials that authenticate an agent (with
// its Baton token) or an operator (with its operator credential):
// `authorization: Bearer <token>`. Like [BasicAuth], they do not demand a
// secure transport. A token longer than [MaxTokenLength] is never sent (see
// [TokenTooLongError]).
func BearerToken(token string) credentials.PerRPCCredentials {
	return bearerAuth(token)
}

// bearerAuth is a bearer token sent on every call.
type bearerAuth string

// GetRequestMetadata implements credentials.PerRPCCredentials. The length
// check here covers credentials used on a connection of the caller's own;
// [Dial], [NewSubscriber] and the Client's calls refuse earlier.
func (b bearerAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	if err := checkToken(string(b)); err != nil {
		return nil, err
	}
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (bearerAuth) RequireTransportSecurity() bool { return false }

func (b bearerAuth) bearerToken() string { return string(b) }

// staticAuth is an `authorization` header value sent on every call.
type staticAuth string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (a staticAuth) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": string(a)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (staticAuth) RequireTransportSecurity() bool { return false }
