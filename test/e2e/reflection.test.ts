// Server reflection serves complete descriptors: the contract's files under
// their own names, with every import they declare (google/protobuf) and the
// google.rpc error details, so a client with no .proto files can resolve
// every type and decode ErrorInfo. Asked through both reflection versions
// (v1, and v1alpha, which older clients such as grpcurl < 1.9 use).

import { fromBinary } from "@bufbuild/protobuf";
import { type DescriptorProto, type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker } from "../helpers/broker.js";

const REFLECTION_PROTOS = join(dirname(createRequire(import.meta.url).resolve("@grpc/reflection/package.json")), "build", "proto");

interface ReflectionResponse {
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  list_services_response?: { service: { name: string }[] };
  error_response?: { error_code: number; error_message: string };
}

/** A reflection stream; each request waits for its response (the server answers in order). */
class Reflection {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, ReflectionResponse>;

  constructor(address: string, version: "v1" | "v1alpha") {
    const def = loadSync(`grpc/reflection/${version}/reflection.proto`, { includeDirs: [REFLECTION_PROTOS], keepCase: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
    };
    this.client = new pkg.grpc.reflection[version]!.ServerReflection(address, grpc.credentials.createInsecure());
    this.call = (this.client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<object, ReflectionResponse> }).ServerReflectionInfo();
  }

  ask(request: object): Promise<ReflectionResponse> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.call.once("error", onError);
      this.call.once("data", (res: ReflectionResponse) => {
        this.call.off("error", onError);
        resolve(res);
      });
      this.call.write(request);
    });
  }

  /** The files a response carries, decoded; fails on an error response. */
  async files(request: object): Promise<FileDescriptorProto[]> {
    const res = await this.ask(request);
    expect(res.error_response, JSON.stringify(request)).toBeUndefined();
    return res.file_descriptor_response!.file_descriptor_proto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
  }

  /**
   * The file containing `symbol` and every file it imports, transitively: the
   * imports the first answer leaves out are asked for by name, as clients do.
   */
  async closure(symbol: string): Promise<Map<string, FileDescriptorProto>> {
    const byName = new Map<string, FileDescriptorProto>();
    for (const f of await this.files({ file_containing_symbol: symbol })) byName.set(f.name, f);
    const pending = [...byName.values()].flatMap((f) => f.dependency);
    while (pending.length > 0) {
      const name = pending.pop()!;
      if (byName.has(name)) continue;
      const [file, ...rest] = await this.files({ file_by_filename: name });
      expect(file!.name).toBe(name);
      for (const f of [file!, ...rest]) {
        if (byName.has(f.name)) continue;
        byName.set(f.name, f);
        pending.push(...f.dependency);
      }
    }
    return byName;
  }

  close(): void {
    this.call.end();
    this.client.close();
  }
}

/** Fully qualified names (".pkg.Type") of the messages and enums the files define. */
function definedTypes(files: Iterable<FileDescriptorProto>): Set<string> {
  const out = new Set<string>();
  const walk = (prefix: string, messages: DescriptorProto[], enums: { name: string }[]): void => {
    for (const e of enums) out.add(`${prefix}.${e.name}`);
    for (const m of messages) {
      out.add(`${prefix}.${m.name}`);
      walk(`${prefix}.${m.name}`, m.nestedType, m.enumType);
    }
  };
  for (const f of files) walk(f.package ? `.${f.package}` : "", f.messageType, f.enumType);
  return out;
}

/** Every type the files refer to: field types, method inputs and outputs. */
function referencedTypes(files: Iterable<FileDescriptorProto>): Set<string> {
  const out = new Set<string>();
  const walk = (messages: DescriptorProto[]): void => {
    for (const m of messages) {
      for (const f of m.field) if (f.typeName) out.add(f.typeName);
      walk(m.nestedType);
    }
  };
  for (const f of files) {
    walk(f.messageType);
    for (const s of f.service) for (const m of s.method) out.add(m.inputType).add(m.outputType);
  }
  return out;
}

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => {
  await broker?.stop();
});

describe.each(["v1", "v1alpha"] as const)("server reflection %s", (version) => {
  let reflection: Reflection;
  beforeAll(() => {
    reflection = new Reflection(broker.address, version);
  });
  afterAll(() => reflection.close());

  it("lists the Baton services", async () => {
    const res = await reflection.ask({ list_services: "*" });
    const names = res.list_services_response!.service.map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["baton.v1.BrokerService", "baton.v1.AdminService"]));
  });

  it.each(["baton.v1.BrokerService", "baton.v1.AdminService"])("serves %s with every import, and every type it uses resolves", async (service) => {
    const files = await reflection.closure(service);
    const file = service === "baton.v1.BrokerService" ? "baton/v1/broker.proto" : "baton/v1/admin.proto";
    expect([...files.keys()]).toEqual(expect.arrayContaining([file, "google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]));
    expect(files.get(file)!.dependency).toEqual(expect.arrayContaining(["google/protobuf/duration.proto", "google/protobuf/timestamp.proto"]));
    const defined = definedTypes(files.values());
    const unresolved = [...referencedTypes(files.values())].filter((t) => !defined.has(t));
    expect(unresolved).toEqual([]);
    expect(defined).toContain(".google.protobuf.Duration");
    // Comments travel too: `grpcurl describe` shows them.
    expect(files.get(file)!.sourceCodeInfo?.location.some((l) => l.leadingComments.trim() !== "")).toBe(true);
  });

  it.each([
    ["google.rpc.ErrorInfo", "google/rpc/error_details.proto"],
    ["google.rpc.RetryInfo", "google/rpc/error_details.proto"],
    ["google.rpc.Status", "google/rpc/status.proto"],
    ["baton.v1.ErrorReason", "baton/v1/errors.proto"],
  ])("serves %s (error details decode with no .proto files) from %s", async (symbol, file) => {
    const files = await reflection.closure(symbol);
    expect(files.has(file)).toBe(true);
    const defined = definedTypes(files.values());
    expect(defined).toContain(`.${symbol}`);
    expect([...referencedTypes(files.values())].filter((t) => !defined.has(t))).toEqual([]);
  });

  it("answers an unknown symbol with NOT_FOUND, and keeps serving the stream", async () => {
    const res = await reflection.ask({ file_containing_symbol: "baton.v1.NoSuchThing" });
    expect(res.error_response?.error_code).toBe(grpc.status.NOT_FOUND);
    expect((await reflection.files({ file_by_filename: "google/protobuf/duration.proto" }))[0]!.name).toBe("google/protobuf/duration.proto");
  });
});
