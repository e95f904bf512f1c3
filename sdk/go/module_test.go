// Module hygiene (issue 9): what a user of the published module relies on
// beyond the code. The module zip holds only sdk/go, so the license must be
// here; and the module path in go.mod, which must match where the repository
// lives, must be the one the protos' go_package gave the generated code.

package batonsdk_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/baton-dev/baton/sdk/go/batonv1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// modulePath is where the repository lives (github.com/baton-dev/baton, as
// sdk/ts/package.json's repository) plus the module's directory.
const modulePath = "github.com/baton-dev/baton/sdk/go"

func TestModulePathIsTheRepositorys(t *testing.T) {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^module\s+(\S+)\s*$`).FindSubmatch(gomod)
	if m == nil || string(m[1]) != modulePath {
		t.Fatalf("go.mod: module %q, want %q", m, modulePath)
	}
}

func TestGeneratedCodeIsInTheModule(t *testing.T) {
	for _, f := range []protoreflect.FileDescriptor{batonv1.File_baton_v1_broker_proto, batonv1.File_baton_v1_admin_proto, batonv1.File_baton_v1_errors_proto} {
		opts, ok := f.Options().(*descriptorpb.FileOptions)
		if !ok {
			t.Fatalf("%s: no file options", f.Path())
		}
		if got, want := opts.GetGoPackage(), modulePath+"/batonv1;batonv1"; got != want {
			t.Errorf("%s: go_package %q, want %q", f.Path(), got, want)
		}
	}
}

func TestLicenseIsApache2(t *testing.T) {
	b, err := os.ReadFile("LICENSE")
	if err != nil {
		t.Fatalf("the module needs its own LICENSE (the repository's is outside the module zip): %v", err)
	}
	text := string(b)
	for _, want := range []string{"Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "END OF TERMS AND CONDITIONS"} {
		if !strings.Contains(text, want) {
			t.Errorf("LICENSE lacks %q", want)
		}
	}
}
