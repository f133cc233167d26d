"""The stream transport spoken by hand (docs/wire-protocol.md, "Stream
transport"): control messages, a HELLO with its proof, frames built byte by
byte, for tests that must send what a real sender never does."""
import hashlib
import hmac
import os
import socket
import struct

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283

CHALLENGE, HELLO, WELCOME, REJECT, ACK, HEARTBEAT = 1, 2, 3, 4, 5, 6
VERSION = 2  # the stream transport's version
HAS_KEY, HAS_POSITION, RESUME = 1, 2, 4  # HELLO flags


def message(mtype, body, version=VERSION):
    head = struct.pack("<4sBBH", b"SLCT", version, mtype, len(body)) + body
    return head + struct.pack("<I", crc32c(head))


def recv_exact(s, n, timeout=10):
    s.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def recv_message(s):
    head = recv_exact(s, 8)
    magic, version, mtype, blen = struct.unpack("<4sBBH", head)
    assert magic == b"SLCT"
    body = recv_exact(s, blen)
    crc = struct.unpack("<I", recv_exact(s, 4))[0]
    assert crc == crc32c(head + body), "control message CRC"
    return mtype, body


def parse_reject(body):
    reason, n, _ = struct.unpack_from("<HHI", body, 0)
    return reason, body[8:8 + n].decode()


def session_secret(key, server_nonce, signed):
    """The secret of the session a HELLO without RESUME starts."""
    return hmac.new(key, b"sluice session v2" + server_nonce + signed, hashlib.sha256).digest()


def hello(server_nonce, key=b"", stream_id=1, session_id=0x1234, position=None, version=VERSION,
          heartbeat_ms=1000, bad_proof=False, resume_secret=None):
    """A HELLO proving `key`; with `resume_secret`, a resume proving that
    secret instead (RESUME flag)."""
    flags = (HAS_KEY if key else 0) | (HAS_POSITION if position is not None else 0)
    if resume_secret is not None:
        flags |= RESUME
    seq, pidx = position or (0, 0)
    nonce = os.urandom(32)
    signed = struct.pack("<IIQQQQ", flags, heartbeat_ms, stream_id, session_id, seq, pidx) + nonce
    if resume_secret is not None:
        proof = hmac.new(resume_secret, b"sluice resume v2" + server_nonce + signed,
                         hashlib.sha256).digest()
    else:
        proof = hmac.new(key, b"sluice hello v1" + server_nonce + signed, hashlib.sha256).digest()
    if bad_proof:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    return message(HELLO, signed + proof, version), signed


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    mtype, body = recv_message(s)
    assert mtype == CHALLENGE and len(body) == 40
    flags, reserved = struct.unpack_from("<II", body, 0)
    return s, flags, body[8:40]


def handshake(port, key=b"", stream_id=1, with_secret=False, **kw):
    """A complete handshake; returns (socket, resume sequence), and the
    session's secret as a third item with `with_secret`. Checks the
    collector's proof like a sender must."""
    s, _, nonce = connect(port)
    msg, signed = hello(nonce, key, stream_id, **kw)
    s.sendall(msg)
    mtype, body = recv_message(s)
    assert mtype == WELCOME, parse_reject(body) if mtype == REJECT else mtype
    resume, flags, reserved = struct.unpack_from("<QII", body, 0)
    resumed = kw.get("resume_secret")
    proved = resumed if resumed is not None else key
    want = hmac.new(proved, b"sluice welcome v1" + signed + nonce + body[:16],
                    hashlib.sha256).digest()
    assert hmac.compare_digest(body[16:48], want), "the collector's proof"
    if with_secret:
        secret = resumed if resumed is not None else session_secret(key, nonce, signed)
        return s, resume, secret
    return s, resume


def frame(stream_id, seq, first_index, records):
    """An uncompressed sluice frame (wire format version 1)."""
    payload = b""
    for ts, data in records:
        rec = struct.pack("<QIIHHI", ts, len(data), len(data), 0, 0, 0) + data
        payload += rec + b"\0" * (-len(rec) % 8)
    head = struct.pack("<4sBBBBHHIQQQIII", b"SLCF", 1, 8, 0, 0, 0, 0, len(records), stream_id, seq,
                       first_index, len(payload), len(payload), crc32c(payload)) + b"\0" * 8
    return head + struct.pack("<I", crc32c(head)) + payload


def closed_by_collector(s, timeout=10):
    """Reads until EOF; returns the REJECT (reason, text) seen on the way, if any."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    s.close()
    off = 0
    while off + 12 <= len(data):
        mtype, blen = data[off + 5], struct.unpack_from("<H", data, off + 6)[0]
        if mtype == REJECT:
            return parse_reject(data[off + 8:off + 8 + blen])
        off += 12 + blen
    return None


