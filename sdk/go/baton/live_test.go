package baton_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// liveEnv names the environment a live broker test needs, set by the script
// that starts the broker.
var liveEnv = []string{"BATON_ADDR", "BATON_CLIENT_ID", "BATON_CLIENT_SECRET", "BATON_AUDIENCE", "BATON_SCOPE"}

// liveConfig reads liveEnv, failing the test when any is missing: a live test
// that silently skips proves nothing.
func liveConfig(t *testing.T) map[string]string {
	t.Helper()
	cfg := map[string]string{}
	var missing []string
	for _, name := range liveEnv {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		cfg[name] = v
	}
	if len(missing) > 0 {
		t.Fatalf("live broker test needs environment variables %v (missing: %v); start a broker and set them (see scripts/sdk-test.sh)", liveEnv, missing)
	}
	return cfg
}

func dialApp(t *testing.T, cfg map[string]string) *baton.Client {
	t.Helper()
	client, err := baton.Dial(cfg["BATON_ADDR"], baton.WithBasicAuth(cfg["BATON_CLIENT_ID"], cfg["BATON_CLIENT_SECRET"]))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestLiveIssueValidateRevoke(t *testing.T) {
	cfg := liveConfig(t)
	client := dialApp(t, cfg)
	ctx := t.Context()

	issued, err := client.Issue(ctx, &batonv1.IssueRequest{
		TaskId:    "sdk-go-live-" + time.Now().UTC().Format("20060102T150405.000000000"),
		Scopes:    []string{cfg["BATON_SCOPE"]},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if issued.GetAccessToken() == "" {
		t.Fatal("Issue returned an empty access token")
	}

	validated, err := client.Validate(ctx, &batonv1.ValidateRequest{Token: issued.GetAccessToken(), Audience: cfg["BATON_AUDIENCE"]})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !validated.GetValid() || validated.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_VALID {
		t.Fatalf("Validate of a fresh token = valid %v, status %v; want true, TOKEN_STATUS_VALID", validated.GetValid(), validated.GetStatus())
	}
	claims := validated.GetClaims()
	if got, want := claims.GetScopes(), []string{cfg["BATON_SCOPE"]}; !slices.Equal(got, want) {
		t.Errorf("claims.scopes = %q, want %q", got, want)
	}
	if got, want := claims.GetAppId(), cfg["BATON_CLIENT_ID"]; got != want {
		t.Errorf("claims.app_id = %q, want %q", got, want)
	}
	if claims.GetTokenId() == "" {
		t.Fatal("claims.token_id is empty")
	}

	revoked, err := client.Revoke(ctx, &batonv1.RevokeRequest{
		Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN,
		Id:     claims.GetTokenId(),
		Reason: "sdk/go live test",
	})
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got := revoked.GetRevocation().GetTarget(); got != batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN {
		t.Errorf("revocation.target = %v, want REVOCATION_TARGET_TOKEN", got)
	}

	after, err := client.Validate(ctx, &batonv1.ValidateRequest{Token: issued.GetAccessToken(), Audience: cfg["BATON_AUDIENCE"]})
	if err != nil {
		t.Fatalf("Validate after Revoke: %v", err)
	}
	if after.GetValid() || after.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_REVOKED {
		t.Fatalf("Validate of a revoked token = valid %v, status %v; want false, TOKEN_STATUS_REVOKED", after.GetValid(), after.GetStatus())
	}
}

func TestLiveIssueOutsideCeilingIsPermissionDenied(t *testing.T) {
	cfg := liveConfig(t)
	client := dialApp(t, cfg)

	_, err := client.Issue(t.Context(), &batonv1.IssueRequest{
		TaskId:    "sdk-go-live-ceiling",
		Scopes:    []string{"admin:everything:*"},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	var berr *baton.Error
	if !errors.As(err, &berr) {
		t.Fatalf("Issue outside the ceiling: err = %v (%T), want a *baton.Error", err, err)
	}
	if berr.Code != codes.PermissionDenied {
		t.Errorf("Code = %v, want PermissionDenied (%v)", berr.Code, berr)
	}
	if want := baton.ReasonOf(batonv1.ErrorReason_ERROR_REASON_SCOPE_NOT_COVERED); berr.Reason != want {
		t.Errorf("Reason = %q, want %q (%v)", berr.Reason, want, berr)
	}
	if berr.ErrorReason() != batonv1.ErrorReason_ERROR_REASON_SCOPE_NOT_COVERED {
		t.Errorf("ErrorReason() = %v, want ERROR_REASON_SCOPE_NOT_COVERED", berr.ErrorReason())
	}
}
