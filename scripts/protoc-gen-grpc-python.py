"""A protoc plugin that runs grpcio-tools' built-in `grpc_python` generator.

grpcio-tools links the gRPC Python generator into its own protoc instead of
shipping a `protoc-gen-grpc_python` executable, and buf can only run protoc's
own built-in generators through `protoc_builtin`. This adapter reads the
CodeGeneratorRequest buf sends, hands the files to that protoc as a
descriptor set, and returns what it wrote as a CodeGeneratorResponse.

Run with the venv interpreter that has the pinned grpcio-tools (see
buf.gen.yaml and scripts/generate.sh).
"""

import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2


def main() -> int:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as tmp:
        descriptor_set = os.path.join(tmp, "input.binpb")
        with open(descriptor_set, "wb") as f:
            f.write(
                descriptor_pb2.FileDescriptorSet(
                    file=request.proto_file
                ).SerializeToString()
            )
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        parameter = request.parameter + ":" if request.parameter else ""
        # protoc's own output goes to stderr: stdout carries the response.
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"--descriptor_set_in={descriptor_set}",
                f"--grpc_python_out={parameter}{out}",
                *request.file_to_generate,
            ],
            stdout=sys.stderr,
            check=False,
        )
        if result.returncode != 0:
            response.error = f"grpc_tools.protoc exited with {result.returncode}"
        else:
            for directory, _, names in sorted(os.walk(out)):
                for name in sorted(names):
                    path = os.path.join(directory, name)
                    with open(path, encoding="utf-8") as f:
                        response.file.add(
                            name=os.path.relpath(path, out).replace(os.sep, "/"),
                            content=f.read(),
                        )
    sys.stdout.buffer.write(response.SerializeToString())
    return 0


if __name__ == "__main__":
    sys.exit(main())
