/**
 * @module
 * sendfile(2) through Bun's FFI (runtime/libc.ts), for record batches that go from a segment file to a
 * socket without passing through the process: about 0.27 s of broker CPU per GiB sent
 * against 0.43-0.52 s for reading 1 MiB pieces and writing them (bench/README.md, "The
 * hot path"). Null where it cannot work: not Linux, not Bun (Deno has no `bun:ffi`),
 * libc not loadable, or turned off with BROOK_SENDFILE=0.
 */
import { EAGAIN, EINTR, libc } from "../runtime/libc.ts";

/** Sends up to `count` bytes of `fileFd` from `position`; 0 when the socket is full. Throws on any other failure. */
export type SendFile = (
  socketFd: number,
  fileFd: number,
  position: number,
  count: number,
) => number;

function load(): SendFile | null {
  if (libc === null || process.env.BROOK_SENDFILE === "0") return null;
  const { sendfile, errno } = libc;
  return (socketFd, fileFd, position, count) => {
    const sent = sendfile(socketFd, fileFd, position, count);
    if (sent > 0) return sent;
    if (sent === 0) throw new Error("sendfile: the file ends before the bytes it should hold");
    const code = errno();
    if (code === EAGAIN || code === EINTR) return 0;
    throw new Error(`sendfile failed: errno ${code}`);
  };
}

export const sendFile: SendFile | null = load();

/** The descriptor of a node:net socket where the runtime exposes it (Bun does), else null. */
export function socketDescriptor(socket: unknown): number | null {
  const fd = (socket as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : null;
}
