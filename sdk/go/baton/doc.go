// Package baton is a thin client for the Baton credential broker.
//
// The generated messages and stubs live in package batonv1; this package
// adds what every caller needs around them: a connection with the caller's
// credentials on every call ([BasicAuth] for an app, [BearerToken] for an
// agent or an operator), a default deadline, and errors converted to
// [*Error], which carries the gRPC code and Baton's machine-readable reason.
//
//	client, err := baton.Dial("localhost:50051",
//		baton.WithBasicAuth(clientID, clientSecret))
//	if err != nil { ... }
//	defer client.Close()
//	resp, err := client.Issue(ctx, &batonv1.IssueRequest{...})
//	var berr *baton.Error
//	if errors.As(err, &berr) && berr.Reason == "SCOPE_NOT_COVERED" { ... }
package baton
