# Shared by scripts/setup, test, demo, bench. Source it; do not run it.
# shellcheck shell=bash
SLUICE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SLUICE_BUILD=${SLUICE_BUILD:-$SLUICE_ROOT/build}
# Debian's interpreter: its python3-scapy / python3-pytest are not visible to
# other pythons that may come first on PATH.
PY=/usr/bin/python3

log()  { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die()  { printf '[%s] error: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Debian packages the build, the tests, the demo and the benchmarks need.
SLUICE_PACKAGES=(
  # build
  build-essential meson ninja-build pkg-config clang libclang-rt-14-dev clang-format clang-tidy
  dpdk dpdk-dev libdpdk-dev
  rdma-core libibverbs-dev librdmacm-dev ibverbs-providers
  # RDMA tools: ibv_devices (operators' checks), ib_write_bw (scripts/bench rdma)
  ibverbs-utils perftest
  libhwloc-dev libnuma-dev liblz4-dev libzstd-dev libfmt-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev libpcap-dev
  # egress.type = "jetstream" and collector groups (docs/scale-out.md): the
  # NATS C client, and the server the tests and benchmarks run a cluster of
  libnats-dev nats-server
  # the HTTP listener (http/: civetweb) and its tests: promtool and a
  # Prometheus server (tests/system/test_metrics.py)
  libcivetweb-dev prometheus
  # sluice-query --url: answers fetched from collectors over HTTP(S)
  libcurl4-openssl-dev
  # the Debian packages (debian/) and their test (tests/system/test_packaging.py)
  debhelper help2man lintian
  # tests, demo, benchmarks
  python3 python3-pytest python3-scapy tshark tcpdump tcpreplay iperf3 lz4 zstd
  # the latency benchmark's peer (bench/latency): the kernel's TCP floor, and
  # gnuplot for the plots in docs/performance.md
  sockperf gnuplot-nox
  # certificates for the TLS tests and benchmark (tests/system/test_tls.py, bench/tcp/run)
  openssl
  psmisc iproute2 procps util-linux
  # RDMA testbed (QEMU guest with soft-RoCE)
  qemu-system-x86 debootstrap cpio xz-utils
)

missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

need_root() { [ "$(id -u)" = 0 ] || die "$1 needs root (run as root or with sudo)"; }

ensure_packages() {
  local miss
  mapfile -t miss < <(missing_packages "$@")
  [ ${#miss[@]} -eq 0 ] && return 0
  need_root "installing ${miss[*]}"
  log "installing Debian packages: ${miss[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer it up front.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  if ! apt-get install -y -qq --no-install-recommends "${miss[@]}" >/tmp/sluice-apt.log 2>&1; then
    apt-get update -qq >>/tmp/sluice-apt.log 2>&1 || true
    apt-get install -y -qq --no-install-recommends "${miss[@]}" >>/tmp/sluice-apt.log 2>&1 ||
      { tail -20 /tmp/sluice-apt.log >&2; die "apt-get install failed (log: /tmp/sluice-apt.log)"; }
  fi
}

# Reserve 2 MB huge pages (never shrink a larger reservation), mount hugetlbfs,
# and remove hugepage files that no running process maps (left by crashes).
ensure_hugepages() {
  local want=${SLUICE_HUGEPAGES:-1024}
  local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
  local have; have=$(cat "$nr" 2>/dev/null || echo 0)
  if [ "$have" -lt "$want" ]; then
    need_root "reserving huge pages"
    echo "$want" > "$nr" || die "cannot reserve $want huge pages (echo $want > $nr)"
    have=$(cat "$nr")
    [ "$have" -ge "$want" ] || log "warning: asked for $want 2 MB huge pages, the kernel gave $have (memory is fragmented; reboot or reserve at boot with hugepages=$want)"
  fi
  if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    need_root "mounting hugetlbfs"
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages || die "cannot mount hugetlbfs on /dev/hugepages"
  fi
  local f held
  held=$( { cat /proc/[0-9]*/maps 2>/dev/null || true; } | awk '$6 ~ /^\/dev\/hugepages\// {print $6}' | sort -u)
  for f in /dev/hugepages/*; do
    [ -f "$f" ] || continue
    grep -qxF "$f" <<<"$held" && continue
    fuser -s "$f" 2>/dev/null && continue
    rm -f "$f"
  done
}

# Configure (once) and build a meson build directory. $1 = dir, rest = meson options.
build_dir() {
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    mkdir -p "$dir"
    meson setup "$dir" "$SLUICE_ROOT" -Dwerror=true "$@" >"$dir/sluice-setup.log" 2>&1 ||
      { cat "$dir/sluice-setup.log" >&2; die "meson setup $dir failed"; }
  fi
  ninja -C "$dir" >"$dir/sluice-build.log" 2>&1 || { tail -40 "$dir/sluice-build.log" >&2; die "build failed in $dir (log: $dir/sluice-build.log)"; }
}
