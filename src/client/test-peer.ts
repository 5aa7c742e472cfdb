/**
 * A fake Kafka peer for tests: a loopback server that cuts each connection's bytes into
 * request frames (4-byte length prefix) and hands each frame, without its length, to
 * `onFrame`. The caller answers on the socket and closes the server when done.
 */
import { Buffer } from "node:buffer";
import { createServer, type Server, type Socket } from "node:net";

export async function framePeer(
  onFrame: (socket: Socket, frame: Buffer) => void,
): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    let buffer = Buffer.alloc(0);
    socket.on("data", (data: Buffer) => {
      buffer = Buffer.concat([buffer, data]);
      while (buffer.length >= 4 && buffer.length >= 4 + buffer.readInt32BE(0)) {
        const frame = buffer.subarray(4, 4 + buffer.readInt32BE(0));
        buffer = buffer.subarray(4 + frame.length);
        onFrame(socket, frame);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}
