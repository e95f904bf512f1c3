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
//
// An agent's token may be bound to the agent's key: issue it with the key's
// public JWK, and every call made with it then carries a fresh proof of
// possession ([AgentKey.Proof]) in `baton-proof` metadata, which
// [AgentCredentials] makes per call for the method being called. [AsAgent]
// uses them for one call (replacing the Client's own credentials),
// [WithAgentCredentials] for a whole Client; [Client.DelegateAs] and
// [Client.Release] are the agent's two calls.
//
//	key, err := baton.GenerateAgentKey() // ES256; or GenerateAgentKeyWithAlgorithm(baton.EdDSA)
//	issued, err := client.Issue(ctx, &batonv1.IssueRequest{..., AgentPublicKeyJwk: key.PublicJWK()})
//	token := issued.GetAccessToken() // claims.key_thumbprint == key.Thumbprint()
//	child, err := client.DelegateAs(ctx, token, key, &batonv1.DelegateRequest{Scopes: ...})
//	_, err = client.Release(ctx, token, key, "done") // the child dies with it
//
// An operator manages apps, resource servers and signing keys with an
// [AdminClient] ([DialAdmin] with the operator token), which has the same
// deadline and typed errors; [AdminClient.AllApps] and
// [AdminClient.AllResourceServers] iterate over every page of a list.
// RevokeMany (an app's or the operator's) revokes up to 1000 targets all or
// nothing. An error with a google.rpc.RetryInfo (RATE_LIMITED,
// AUTHENTICATION_THROTTLED) carries its delay in [Error.RetryAfter].
//
//	admin, err := baton.DialAdmin("localhost:50051", operatorToken)
//	created, err := admin.CreateApp(ctx, &batonv1.CreateAppRequest{...})
//	for app, err := range admin.AllApps(ctx, 100) { ... }
//	_, err = client.RevokeMany(ctx, &batonv1.RevokeManyRequest{Targets: targets})
//	if errors.As(err, &berr) && berr.RetryAfter > 0 { time.Sleep(berr.RetryAfter) }
//
// A resource server verifies tokens offline: a [Subscriber] keeps a live
// copy of the broker's revocations (StreamRevocations, reconnecting and
// resuming from its cursor), and a [Verifier] checks signature (ES256 or
// EdDSA, the key's own), typ, issuer, lifetime, audience, scopes,
// revocation and proof of possession against it, refusing everything
// (STALE) when the copy is older than MaxStaleness. [UnaryServerInterceptor]
// and [StreamServerInterceptor] put it in front of a gRPC server.
//
//	sub, err := baton.NewSubscriber(baton.SubscriberOptions{
//		Target: "127.0.0.1:50051", Credentials: baton.BasicAuth(rsID, rsSecret)}) // or an app's
//	sub.Start()
//	defer sub.Close()
//	err = sub.Ready(ctx) // the first snapshot is in
//	v, err := baton.NewVerifier(baton.VerifierOptions{Audience: "ehr-api",
//		Issuer: "https://baton.local", Keys: baton.KeySetFromClient(client), Revocations: sub})
//	r := v.Verify(ctx, token, baton.VerifyOptions{RequiredScopes: []string{"read:records:P-1"}, Proof: proof, HTM: method})
//	if !r.OK { ... r.Reason ... } // REVOKED, EXPIRED, STALE, PROOF_REQUIRED, ...
package baton
