// A gRPC server with Baton's BrokerService contract whose Issue and Validate
// do nothing: a constant answer of the same size as the broker's. `LOAD_FLOOR=1
// npm run bench:load` drives it with the same loadgen, so its CPU per call is
// what grpc-js, HTTP/2 and protobuf cost on this machine before any of
// Baton's own work (no authentication, signature, database or audit).
// Prints the port it listens on.

import * as grpc from "@grpc/grpc-js";
import { BrokerServiceService, IssueResponse, TokenStatus, ValidateResponse } from "../server/gen/baton/v1/broker.js";

// About the size of a broker-issued token (header, claims, ES256 signature).
const TOKEN = `eyJ${"a".repeat(120)}.eyJ${"b".repeat(420)}.${"c".repeat(86)}`;
const issued = IssueResponse.fromPartial({ accessToken: TOKEN, ttlClamped: false });
const valid = ValidateResponse.fromPartial({ valid: true, status: TokenStatus.TOKEN_STATUS_VALID });

const handlers: grpc.UntypedServiceImplementation = {};
for (const name of Object.keys(BrokerServiceService)) {
  handlers[name] = (_call: unknown, done: grpc.sendUnaryData<unknown>) => done({ code: grpc.status.UNIMPLEMENTED, details: "not in the floor server" });
}
handlers.issue = (_call: unknown, done: grpc.sendUnaryData<IssueResponse>) => done(null, issued);
handlers.validate = (_call: unknown, done: grpc.sendUnaryData<ValidateResponse>) => done(null, valid);

const server = new grpc.Server();
server.addService(BrokerServiceService, handlers);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(port);
});
process.on("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
