# Stage-2 init of the RDMA testbed guest (runs as PID 1 under /bin/sh).
# scripts/rdma-testbed copies it into the per-run control share (/testbed)
# for every boot, so it can change without rebuilding the image.
# shellcheck shell=sh
C=/testbed
up() { cut -d' ' -f1 /proc/uptime; }
fail() {
  echo "testbed-init: $*"
  echo o > /proc/sysrq-trigger
  sleep 30
}

mkdir -p /dev/pts /dev/shm /run /tmp
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
hostname testbed
echo "testbed-init: userspace up at $(up) s"

O=trans=virtio,version=9p2000.L,msize=262144
while read -r tag path; do
  [ -n "$tag" ] || continue
  mkdir -p "$path"
  mount -t 9p -o "$O,cache=mmap" "$tag" "$path" || fail "cannot mount the share $path"
done < $C/shares

# Verbs pin every registered buffer; the default 8 MB limit fails large MRs.
# shellcheck disable=SC3045  # the guest's sh is dash, which has ulimit -l
ulimit -l unlimited
modprobe -a crc32_pclmul crc32_generic rdma_rxe ib_uverbs rdma_ucm ib_umad veth ||
  fail "cannot load the RDMA modules"
# Kernel TLS (TCP_ULP "tls"): the guest's Debian kernel has it, so the TLS
# transport's kernel path runs for real here (tests/rdma guest_tls).
# Its AES-GCM: the generic modules, and the AES-NI ones where the CPU QEMU
# emulates has AES-NI (the kernel picks the fastest that loads).
modprobe -a tls gcm ghash_generic ctr ||
  echo "testbed-init: no kernel TLS modules (guest_tls will fail)"
modprobe -a aesni_intel ghash_clmulni_intel 2> /dev/null || true
MTU=$(cat $C/mtu 2> /dev/null || echo 9000)
ip link set lo up
ip link add veth0 type veth peer name veth1
ip link set veth0 mtu "$MTU"
ip link set veth1 mtu "$MTU"
ip addr add 10.10.0.1/24 dev veth0
ip addr add 10.10.0.2/24 dev veth1
for d in all default veth0 veth1; do
  echo 1 > /proc/sys/net/ipv4/conf/$d/accept_local
  echo 0 > /proc/sys/net/ipv4/conf/$d/rp_filter
done
ip link set veth0 up
ip link set veth1 up
# Both addresses are local, so the kernel would route rxe1 <-> rxe0 through
# lo and rxe would never see it. Per-source tables ahead of the local table
# send it out of the veth pair; accept_local lets the other end take it in.
ip rule add pref 1000 lookup local
ip rule del pref 0
ip route add 10.10.0.2 dev veth0 src 10.10.0.1 table 100
ip route add 10.10.0.1 dev veth1 src 10.10.0.2 table 101
ip rule add pref 100 from 10.10.0.1 to 10.10.0.2 iif lo lookup 100
ip rule add pref 101 from 10.10.0.2 to 10.10.0.1 iif lo lookup 101
# ARP between two local addresses is answered only on retry: the first
# rdma_cm address resolution of a boot took ~5 s. The MACs are known, so
# the neighbours are fixed here.
ip neigh replace 10.10.0.2 lladdr "$(cat /sys/class/net/veth1/address)" dev veth0 nud permanent
ip neigh replace 10.10.0.1 lladdr "$(cat /sys/class/net/veth0/address)" dev veth1 nud permanent
rdma link add rxe0 type rxe netdev veth0 || fail "rdma link add rxe0 failed"
rdma link add rxe1 type rxe netdev veth1 || fail "rdma link add rxe1 failed"
# The RoCEv2 GID of the address (index 1) appears a little after the port.
i=0
until grep -q ACTIVE /sys/class/infiniband/rxe0/ports/1/state 2> /dev/null &&
  grep -q ACTIVE /sys/class/infiniband/rxe1/ports/1/state 2> /dev/null &&
  grep -q 'ffff:0a0a:0001' /sys/class/infiniband/rxe0/ports/1/gids/1 2> /dev/null &&
  grep -q 'ffff:0a0a:0002' /sys/class/infiniband/rxe1/ports/1/gids/1 2> /dev/null; do
  i=$((i + 1))
  [ $i -gt 100 ] && fail "rxe ports not ACTIVE after 10 s"
  sleep 0.1
done
echo "testbed-init: rxe0/rxe1 ACTIVE at $(up) s"

export SLUICE_RDMA_TESTBED=1 RXE0_IP=10.10.0.1 RXE1_IP=10.10.0.2
cd "$(cat $C/cwd 2> /dev/null || echo /root)" 2> /dev/null || cd /root || fail "no /root"
if [ -f $C/interactive ]; then
  setsid -c /bin/bash -i <> /dev/ttyS1 >&0 2>&0
  rc=$?
else
  # The second serial port is the host's stdout; raw, so output is not mangled.
  stty -F /dev/ttyS1 raw -echo 2> /dev/null
  /bin/bash $C/cmd.sh > /dev/ttyS1 2>&1 < /dev/null
  rc=$?
fi
cd /
echo "$rc" > $C/rc
echo "testbed-init: command exited with status $rc at $(up) s"
sync
for m in $(awk '$3=="9p" && $2!="/testbed"{print $2}' /proc/mounts | sort -r); do
  umount "$m" 2> /dev/null
done
echo o > /proc/sysrq-trigger
sleep 30
