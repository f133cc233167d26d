# Checks that the RDMA testbed guest really does RDMA: both soft-RoCE devices
# up, RDMA WRITE across the veth pair and on one device, and connections set
# up through rdma_cm. Runs inside the guest (scripts/rdma-testbed).
#
#   bash rdma-checks.sh [CHECK...]   readable report (scripts/rdma-testbed selftest);
#                                    exit status = number of failed checks
#   . rdma-checks.sh                 then: rdma_check NAME (tests/rdma/guest-suite.sh)
#
# rdma_check prints the check's output and returns non-zero on failure, with
# the reason in RDMA_CHECK_WHY.
# shellcheck shell=bash

RDMA_CHECKS="devices write_bw_veth write_bw_loopback write_lat_veth write_bw_rdma_cm rping ucmatose rdma_client_loopback"
RXE0_IP=${RXE0_IP:-10.10.0.1}
RXE1_IP=${RXE1_IP:-10.10.0.2}
RDMA_CHECK_WHY=""
# perftest iterations: enough to cross many RoCE packets, few enough for an
# emulated CPU (~50 MB/s).
RDMA_CHECK_ITERS=${RDMA_CHECK_ITERS:-200}

_rdma_work() { mktemp -d "${TMPDIR:-/tmp}/rdma-check.XXXXXX"; }

# Server in the background, then the client; the client is retried while the
# server still waits, since there is no portable "listening" signal for rdma_cm.
_rdma_pair() { # SERVER_CMD CLIENT_CMD (word-split)
  local w sp crc=1 src n=0
  w=$(_rdma_work)
  # shellcheck disable=SC2086
  timeout 90 $1 > "$w/server.log" 2>&1 &
  sp=$!
  sleep 0.5
  while :; do
    # shellcheck disable=SC2086
    timeout 60 $2 > "$w/client.log" 2>&1 && crc=0 || crc=$?
    [ "$crc" = 0 ] && break
    n=$((n + 1))
    { [ $n -lt 10 ] && kill -0 "$sp" 2> /dev/null; } || break
    sleep 0.5
  done
  [ "$crc" = 0 ] || kill "$sp" 2> /dev/null
  wait "$sp" && src=0 || src=$?
  echo "--- client ($n retries): $2"
  cat "$w/client.log"
  echo "--- server: $1"
  cat "$w/server.log"
  rm -rf "$w"
  if [ "$crc" != 0 ] || [ "$src" != 0 ]; then
    RDMA_CHECK_WHY="client exited with status $crc, server with $src"
    return 1
  fi
}

check_devices() {
  local out d
  out=$(ibv_devices 2>&1)
  echo "$out"
  for d in rxe0 rxe1; do
    if ! grep -qw "$d" <<< "$out"; then
      RDMA_CHECK_WHY="ibv_devices does not list $d"
      return 1
    fi
    ibv_devinfo -d "$d" | grep -E 'hca_id|state|active_mtu|link_layer'
    if ! ibv_devinfo -d "$d" | grep -q 'state:.*PORT_ACTIVE'; then
      RDMA_CHECK_WHY="port 1 of $d is not ACTIVE"
      return 1
    fi
  done
  rdma link show
}

# Bytes through veth0 both ways: the proof that rxe1 <-> rxe0 traffic really
# crossed the veth pair instead of taking rxe's loopback or lo.
_veth_bytes() {
  echo $(($(cat /sys/class/net/veth0/statistics/rx_bytes) + $(cat /sys/class/net/veth0/statistics/tx_bytes)))
}

_crossed_veth() { # BYTES_BEFORE PAYLOAD
  local moved=$(($(_veth_bytes) - $1))
  echo "veth0 moved $moved bytes (payload $2)"
  if [ "$moved" -lt "$2" ]; then
    RDMA_CHECK_WHY="veth0 moved $moved bytes for a $2-byte payload: traffic between rxe1 and rxe0 did not cross the veth pair (policy routing, source address binding)"
    return 1
  fi
}

check_write_bw_veth() {
  local b
  b=$(_veth_bytes)
  _rdma_pair "ib_write_bw -d rxe0 -x 1 -F -s 65536 -n $RDMA_CHECK_ITERS" \
    "ib_write_bw -d rxe1 -x 1 -F -s 65536 -n $RDMA_CHECK_ITERS $RXE0_IP" &&
    _crossed_veth "$b" $((RDMA_CHECK_ITERS * 65536))
}

check_write_bw_loopback() {
  _rdma_pair "ib_write_bw -d rxe0 -x 1 -F -s 65536 -n $RDMA_CHECK_ITERS" \
    "ib_write_bw -d rxe0 -x 1 -F -s 65536 -n $RDMA_CHECK_ITERS $RXE0_IP"
}

check_write_lat_veth() {
  local b
  b=$(_veth_bytes)
  _rdma_pair "ib_write_lat -d rxe0 -x 1 -F -s 2 -n $RDMA_CHECK_ITERS" \
    "ib_write_lat -d rxe1 -x 1 -F -s 2 -n $RDMA_CHECK_ITERS $RXE0_IP" &&
    _crossed_veth "$b" $((RDMA_CHECK_ITERS * 2))
}

# Connection data exchanged through rdma_cm (-z). rdma_cm picks the device
# from the source address, so the client binds rxe1's; perftest's -R (QPs
# made by rdma_cm) ignores --source_ip and would stay on rxe0 alone.
check_write_bw_rdma_cm() {
  local b
  b=$(_veth_bytes)
  _rdma_pair "ib_write_bw -d rxe0 -x 1 -z -F -s 65536 -n $RDMA_CHECK_ITERS" \
    "ib_write_bw -d rxe1 -x 1 -z -F -s 65536 -n $RDMA_CHECK_ITERS --source_ip $RXE1_IP $RXE0_IP" &&
    _crossed_veth "$b" $((RDMA_CHECK_ITERS * 65536))
}

check_rping() {
  local w n b
  w=$(_rdma_work)
  b=$(_veth_bytes)
  _rdma_pair "rping -s -a $RXE0_IP -C 10 -S 1024 -V" "rping -c -a $RXE0_IP -I $RXE1_IP -C 10 -S 1024 -V -v" > "$w/out" ||
    { cat "$w/out"; rm -rf "$w"; return 1; }
  cat "$w/out"
  n=$(grep -c 'ping data:' "$w/out")
  rm -rf "$w"
  if [ "$n" -lt 10 ]; then
    RDMA_CHECK_WHY="rping exchanged $n of 10 pings"
    return 1
  fi
  _crossed_veth "$b" $((10 * 1024))
}

check_ucmatose() {
  local b
  b=$(_veth_bytes)
  _rdma_pair "ucmatose -b $RXE0_IP -C 10 -S 1000" "ucmatose -s $RXE0_IP -b $RXE1_IP -C 10 -S 1000" &&
    _crossed_veth "$b" $((10 * 1000))
}

# rdma_client cannot bind a source address, so this one stays on rxe0.
check_rdma_client_loopback() { _rdma_pair "rdma_server -s $RXE0_IP" "rdma_client -s $RXE0_IP"; }

rdma_check() { # NAME
  RDMA_CHECK_WHY=""
  if ! declare -F "check_$1" > /dev/null; then
    RDMA_CHECK_WHY="no such check '$1' (checks: $RDMA_CHECKS)"
    return 2
  fi
  "check_$1" && return 0
  [ -n "$RDMA_CHECK_WHY" ] || RDMA_CHECK_WHY="check $1 failed"
  return 1
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  fails=0
  # shellcheck disable=SC2048,SC2086  # a list of plain words
  for c in ${*:-$RDMA_CHECKS}; do
    echo "=== $c"
    if rdma_check "$c"; then echo "ok: $c"; else
      echo "FAILED: $c: $RDMA_CHECK_WHY"
      fails=$((fails + 1))
    fi
  done
  echo "veth0 rx/tx bytes: $(cat /sys/class/net/veth0/statistics/rx_bytes) / $(cat /sys/class/net/veth0/statistics/tx_bytes)"
  echo "selftest: $fails of $(wc -w <<< "${*:-$RDMA_CHECKS}") check(s) failed"
  exit "$fails"
fi
