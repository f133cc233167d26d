"""Stream takeover, against a real collector with named keys while an
honest sender streams: a key holder cannot claim a stream its key may not
write, and a session id seen in clear does not resume another sender's
session (a resume proves the session's secret)."""
import struct
import time

from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               start_send, write_key)
from transport_by_hand import (REJECT, connect, handshake, hello, parse_reject, recv_message)

KEY_A = "rack-a-0123456789abcdef0123456789"
KEY_B = "rack-b-9876543210fedcba9876543210"


def keys_file(tmp_path):
    p = tmp_path / "collector.keys"
    p.write_text("# one key per sender, each with the streams it may write\n"
                 f"key rack-a 1 {KEY_A}\n"
                 f"key rack-b 2-9 {KEY_B}\n")
    p.chmod(0o600)
    return p


def refused(port, msg_for_nonce):
    """Connects, sends the HELLO built for the server's nonce, returns the
    REJECT's (reason, text)."""
    s, _, nonce = connect(port)
    msg, _ = msg_for_nonce(nonce)
    s.sendall(msg)
    mtype, body = recv_message(s)
    s.close()
    assert mtype == REJECT, mtype
    return parse_reject(body)


def session_of(out, stream_id, timeout=30):
    """The session id the collector holds for a stream (its state file, u64
    at offset 24 of a slot): what an eavesdropper reads off the wire."""
    path = out / ".sluice" / f"stream-{stream_id}.state"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists():
            data = path.read_bytes()
            for slot in (0, 4096):
                if len(data) >= slot + 32:
                    sid = struct.unpack_from("<Q", data, slot + 24)[0]
                    if sid:
                        return sid
        time.sleep(0.05)
    raise AssertionError("no session recorded for stream %d" % stream_id)


def test_a_key_cannot_claim_a_stream_it_may_not_write(tmp_path, pcapgen):
    """rack-b's key is valid (streams 2-9) but it claims stream 1, rack-a's,
    while rack-a streams: refused as authentication failed and counted;
    rack-a's stream stays exact. Before, any key holder could write any
    stream id (one key for everyone)."""
    pcap = pcapgen(packets=4000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--key-file", str(keys_file(tmp_path))])
    assert col.wait_for("2 named keys"), col.log()
    a_key = write_key(tmp_path / "a.key", KEY_A)
    proc, _ = start_send(pcap, col.port, stream_id=1, key_file=a_key, rate=2000)
    session_of(out, 1)  # rack-a is streaming
    key_b = KEY_B.encode()
    for _ in range(3):
        reason, text = refused(col.port, lambda n: hello(n, key_b, stream_id=1))
        assert reason == 2, (reason, text)  # auth-failed
        assert "none of the keys allowed to write stream 1" in text, text
    reason, text = refused(col.port, lambda n: hello(n, key_b, stream_id=10))
    assert reason == 2 and "may write stream 10" in text, text
    # The same key on its own stream is welcome: it is a valid key.
    s, resume = handshake(col.port, key=key_b, stream_id=2)
    s.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert col.proc.poll() is None, col.log()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["refused_auth"] == 4, k
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
    assert read_stream(out, 2) == []


def test_a_session_id_seen_in_clear_does_not_resume_the_session(tmp_path, pcapgen):
    """The attacker knows rack-a's session id (it travels in clear) and asks
    to resume it, proving whatever it can: its own key, a secret derived
    from its own key, the key it guesses. Each attempt is refused
    (resume-unknown) and counted, and rack-a's stream stays exact. Before,
    naming the session id resumed the session: frames sent under it made
    the real sender's frames look like duplicates, and they were dropped."""
    pcap = pcapgen(packets=4000, nanosecond=True)
    out = tmp_path / "out"
    col = Collector(out, args=["--key-file", str(keys_file(tmp_path))])
    a_key = write_key(tmp_path / "a.key", KEY_A)
    proc, _ = start_send(pcap, col.port, stream_id=1, key_file=a_key, rate=2000)
    victim = session_of(out, 1)
    key_b = KEY_B.encode()
    for guess in (key_b, b"rack-a", b"\0" * 32):
        reason, text = refused(col.port, lambda n: hello(n, key_b, stream_id=1, session_id=victim,
                                                         position=(10**9, 10**9),
                                                         resume_secret=guess))
        assert reason == 12, (reason, text)  # resume-unknown
        assert "did not prove its secret" in text, text
    # Without the resume flag the session id is just a number: the key must
    # be one that may write the stream, and rack-b's may not.
    reason, _ = refused(col.port, lambda n: hello(n, key_b, stream_id=1, session_id=victim,
                                                  position=(10**9, 10**9)))
    assert reason == 2
    # A resume of a stream the collector has never seen creates nothing.
    reason, text = refused(col.port, lambda n: hello(n, key_b, stream_id=7, session_id=5,
                                                     resume_secret=b"x" * 32))
    assert reason == 12 and "not this collector's session" in text, text
    assert not (out / ".sluice" / "stream-7.state").exists()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert col.proc.poll() is None, col.log()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["refused_resume"] == 4, k
    assert k["refused_auth"] == 1, k
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
