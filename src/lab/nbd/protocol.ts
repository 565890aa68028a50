/**
 * The numbers of the NBD protocol (NetworkBlockDevice/nbd `doc/proto.md`) the lab's server
 * speaks: the fixed newstyle handshake, option haggling with its replies, and the simple-reply
 * transmission phase. Everything on the wire is big-endian.
 */

/** `NBDMAGIC`, then `IHAVEOPT`: the server's greeting; `IHAVEOPT` also starts every client option. */
export const NBD_MAGIC = 0x4e42444d41474943n
export const IHAVEOPT = 0x49484156454f5054n
/** starts every option reply */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n
export const REQUEST_MAGIC = 0x25609513
export const SIMPLE_REPLY_MAGIC = 0x67446698

/** handshake flags (server) and client flags */
export const FLAG_FIXED_NEWSTYLE = 1 << 0
export const FLAG_NO_ZEROES = 1 << 1

export const OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const

const ERR = 2 ** 31
export const REP = {
  ACK: 1,
  INFO: 3,
  ERR_UNSUP: ERR + 1,
  ERR_POLICY: ERR + 2,
  ERR_INVALID: ERR + 3,
  ERR_TLS_REQD: ERR + 5,
  ERR_UNKNOWN: ERR + 6,
} as const

export const INFO = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const

/** transmission flags of an export */
export const TRANSMIT = { HAS_FLAGS: 1 << 0, READ_ONLY: 1 << 1, CAN_MULTI_CONN: 1 << 8 } as const

export const CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
} as const

/** errno values a simple reply carries */
export const ERRNO = { EPERM: 1, EIO: 5, EINVAL: 22 } as const

/** The largest request the server takes; announced as the maximum block size. */
export const MAX_REQUEST = 32 * 1024 * 1024

/** 28 bytes: magic, command flags, type, cookie, offset, length. */
export const REQUEST_SIZE = 28

/** One option reply: magic, the option it answers, reply type, and its data. */
export function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(20)
  head.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0)
  head.writeUInt32BE(option, 8)
  head.writeUInt32BE(type, 12)
  head.writeUInt32BE(data.length, 16)
  return Buffer.concat([head, data])
}

/** The 16-byte header of a simple reply; a successful read's data follows it. */
export function simpleReply(error: number, cookie: Buffer): Buffer {
  const head = Buffer.alloc(16)
  head.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0)
  head.writeUInt32BE(error, 4)
  cookie.copy(head, 8)
  return head
}
