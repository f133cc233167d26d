"""A storm of refusals against a real collector while an honest sender
streams: hundreds of connections a second, each with a wrong key, as a
sender misconfigured in a loop or a guesser would make them. Every one is
refused and counted; the log gets a bounded burst (it must not flood the
journal); the honest stream is written exactly and never reconnects."""
from collector_helpers import (Collector, assert_same_packets, expected_packets, read_stream,
                               start_send, write_key)
from transport_by_hand import REJECT, connect, hello, parse_reject, recv_message

STORM = 600


def test_a_storm_of_wrong_keys_is_counted_in_full_and_logged_in_a_burst(tmp_path, pcapgen):
    pcap = pcapgen(packets=6000, nanosecond=True, seed=51)
    out = tmp_path / "out"
    key = write_key(tmp_path / "k.key", "k" * 32)
    col = Collector(out, args=["--key-file", key])
    sender, _ = start_send(pcap, col.port, stream_id=1, key_file=key, rate=1000)
    assert col.wait_for("stream 1 connected", timeout=30), col.log()
    for i in range(STORM):
        s, _, nonce = connect(col.port)
        s.sendall(hello(nonce, b"x" * 32, stream_id=1, session_id=i + 1)[0])
        mtype, body = recv_message(s)
        s.close()
        assert mtype == REJECT and parse_reject(body)[0] == 2, (i, mtype)  # auth-failed
    _, err = sender.communicate(timeout=120)
    assert sender.returncode == 0, err
    assert col.proc.poll() is None, "the collector died:\n" + col.log()
    assert col.stop() == 0
    k = col.result()["counters"]
    assert k["refused_auth"] == STORM, k
    assert k["handshakes"] == 1, "the honest sender never had to reconnect"
    # 20 lines per 10 s at most, and a line saying how many were left out:
    # not one line per refusal.
    lines = col.log().count("the sender's key differs")
    assert 1 <= lines < STORM // 6, lines
    assert_same_packets(read_stream(out, 1), expected_packets(pcap))
