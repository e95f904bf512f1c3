# Sourced by scripts/generate.sh and scripts/sdk-setup.sh from the repository
# root. Installs pinned tools into .tools/ (gitignored) when missing or at
# another version; a no-op that takes well under a second otherwise.

# Go code generators, installed with `go install` into .tools/bin.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

# Everything under these directories is generated and committed.
GENERATED_DIRS=(server/gen sdk/ts/src/gen sdk/python/src/baton/v1 sdk/go/batonv1)

VENV=.tools/venv
PY_CONSTRAINTS=sdk/python/constraints.txt

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# ensure_venv creates .tools/venv with a Python >= 3.10.
ensure_venv() {
	if [ ! -x "$VENV/bin/python" ]; then
		command -v python3 >/dev/null || die "python3 (>= 3.10) is needed"
		python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
			die "python3 >= 3.10 is needed, found $(python3 --version)"
		echo "creating $VENV" >&2
		python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
	fi
}

# pip_install installs its arguments with the pinned constraints.
pip_install() {
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c "$PY_CONSTRAINTS" "$@"
}

# ensure_python_codegen installs the pinned grpcio-tools (protoc, and the
# gRPC Python generator) into the venv.
ensure_python_codegen() {
	ensure_venv
	local want
	want=$(sed -n 's/^grpcio-tools==//p' "$PY_CONSTRAINTS")
	[ -n "$want" ] || die "$PY_CONSTRAINTS pins no grpcio-tools"
	if ! "$VENV/bin/python" - "$want" <<-'PY' 2>/dev/null; then
		import importlib.metadata as m, sys
		sys.exit(m.version("grpcio-tools") != sys.argv[1])
	PY
		echo "installing grpcio-tools==$want into $VENV" >&2
		pip_install "grpcio-tools==$want"
	fi
}

# ensure_python_packaging installs the pinned build, twine and hatchling
# (the SDK's build backend, for builds without isolation) into the venv.
ensure_python_packaging() {
	ensure_venv
	local tools=(build twine hatchling) want=() name version
	for name in "${tools[@]}"; do
		version=$(sed -n "s/^$name==//p" "$PY_CONSTRAINTS")
		[ -n "$version" ] || die "$PY_CONSTRAINTS pins no $name"
		want+=("$name==$version")
	done
	if ! "$VENV/bin/python" - "${want[@]}" <<-'PY' 2>/dev/null; then
		import importlib.metadata as m, sys
		sys.exit(any(m.version(n) != v for n, v in (a.split("==") for a in sys.argv[1:])))
	PY
		echo "installing ${want[*]} into $VENV" >&2
		pip_install "${want[@]}"
	fi
}

# ensure_go_plugin NAME MODULE_PATH VERSION installs .tools/bin/NAME at
# VERSION unless its --version already reports it.
ensure_go_plugin() {
	local name=$1 pkg=$2 version=$3
	local bin=.tools/bin/$name
	if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qx "$name v\{0,1\}${version#v}"; then
		return
	fi
	command -v go >/dev/null || die "go is needed to install $name"
	echo "installing $name@$version into .tools/bin" >&2
	GOBIN="$PWD/.tools/bin" go install "$pkg@$version"
}

ensure_go_codegen() {
	ensure_go_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
	ensure_go_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
}

# grpcurl, for scripts/grpcurl-check.sh: the contract as a client without the
# .proto files sees it, through server reflection alone.
GRPCURL_VERSION=v1.9.4

# ensure_grpcurl installs .tools/bin/grpcurl at GRPCURL_VERSION. A `go
# install`ed grpcurl reports no version of its own ("dev build"), so the
# version is read from the module information Go builds into it.
ensure_grpcurl() {
	local bin=.tools/bin/grpcurl
	if [ -x "$bin" ] && go version -m "$bin" 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*github.com/fullstorydev/grpcurl[[:space:]]*$GRPCURL_VERSION[[:space:]]"; then
		return
	fi
	command -v go >/dev/null || die "go is needed to install grpcurl"
	echo "installing grpcurl@$GRPCURL_VERSION into .tools/bin" >&2
	GOBIN="$PWD/.tools/bin" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
}
