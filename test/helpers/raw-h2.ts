// A bare HTTP/2 client for hostile-input tests: it sends exactly the header
// fields it is given (repeated names, characters gRPC clients refuse to send,
// header values no HPACK decoder can take), as uncompressed literals, and
// records the frames that come back. It does not decode the answer's headers
// (they are HPACK-compressed); tests read the broker's logs and database.

import { connect, type Socket } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const MAX_FRAME = 16_384;

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, CONTINUATION: 0x9 } as const;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export interface RawExchange {
  readonly frames: Frame[];
  /** Settles when stream 1 ends (END_STREAM or RST_STREAM), a GOAWAY arrives, or the connection closes. */
  readonly answered: Promise<"end-stream" | "rst-stream" | "goaway" | "closed">;
  /** Settles when the broker closes the connection. */
  readonly closed: Promise<void>;
  destroy(): void;
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(n: number, prefixBits: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([n]);
  const out = [max];
  let rest = n - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A literal header field without indexing, new name, no Huffman coding (RFC 7541 §6.2.2). */
function literal(name: string, value: Buffer): Buffer {
  const n = Buffer.from(name, "latin1");
  return Buffer.concat([Buffer.from([0x00]), hpackInt(n.length, 7), n, hpackInt(value.length, 7), value]);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, payload]);
}

/**
 * Sends one gRPC call on stream 1 of a new connection: `headers` after the
 * standard pseudo-headers, then `message` as one gRPC frame.
 */
export function rawCall(port: number, path: string, headers: readonly [string, string | Buffer][], message: Buffer): RawExchange {
  const socket: Socket = connect(port, "127.0.0.1");
  const block = Buffer.concat(
    [
      [":method", "POST"],
      [":scheme", "http"],
      [":path", path],
      [":authority", `127.0.0.1:${port}`],
      ["content-type", "application/grpc"],
      ["te", "trailers"],
      ...headers,
    ].map(([k, v]) => literal(k as string, typeof v === "string" ? Buffer.from(v, "latin1") : (v as Buffer))),
  );
  const out: Buffer[] = [PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))];
  for (let i = 0; i < block.length || i === 0; i += MAX_FRAME) {
    const last = i + MAX_FRAME >= block.length;
    out.push(frame(i === 0 ? FRAME.HEADERS : FRAME.CONTINUATION, last ? END_HEADERS : 0, 1, block.subarray(i, i + MAX_FRAME)));
  }
  const grpcMessage = Buffer.alloc(5 + message.length);
  grpcMessage.writeUInt32BE(message.length, 1);
  message.copy(grpcMessage, 5);
  out.push(frame(FRAME.DATA, END_STREAM, 1, grpcMessage));
  socket.write(Buffer.concat(out));

  const frames: Frame[] = [];
  let buffered = Buffer.alloc(0);
  let settle: (r: "end-stream" | "rst-stream" | "goaway" | "closed") => void = () => {};
  const answered = new Promise<"end-stream" | "rst-stream" | "goaway" | "closed">((r) => (settle = r));
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  socket.on("close", () => settle("closed"));
  socket.on("error", () => {});
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const f: Frame = { type: buffered[3]!, flags: buffered[4]!, streamId: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) };
      buffered = buffered.subarray(9 + length);
      frames.push(f);
      if (f.type === FRAME.SETTINGS && !(f.flags & ACK)) socket.write(frame(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0)));
      if (f.type === FRAME.PING && !(f.flags & ACK)) socket.write(frame(FRAME.PING, ACK, 0, f.payload));
      if (f.type === FRAME.GOAWAY) settle("goaway");
      if (f.streamId === 1 && f.type === FRAME.RST_STREAM) settle("rst-stream");
      if (f.streamId === 1 && (f.type === FRAME.HEADERS || f.type === FRAME.DATA) && f.flags & END_STREAM) settle("end-stream");
    }
  });
  return { frames, answered, closed, destroy: () => socket.destroy() };
}
