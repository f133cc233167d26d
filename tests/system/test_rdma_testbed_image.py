"""The soft-RoCE guest image (scripts/rdma-testbed) runs host-built programs:
every shared library they link must come from a package the image installs,
directly or as a dependency. A library missing there only shows inside the
guest, as exit 127 of every test program; this catches it on the host."""
import functools
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT

GUEST_PROGRAMS = [
    "tests/rdma/guest_transport",
    "tests/rdma/guest_end_to_end",
    "tests/rdma/guest_sender_noalloc",
    "tests/rdma/guest_tls",
    "tests/rdma/guest_testbed_smoke",
    "dataplane/sluice",
    "collector/sluice-collector",
    "tools/sluice-send",
]


def guest_packages():
    script = ROOT / "scripts" / "rdma-testbed"
    out = subprocess.run(
        ["bash", "-c", f'eval "$(sed -n "/^GUEST_PKGS=(/,/^)/p" {script})"; echo "${{GUEST_PKGS[*]}}"'],
        capture_output=True, text=True, check=True).stdout.split()
    assert "libibverbs1" in out, out  # the list was found
    return out


def closure(packages):
    out = subprocess.run(
        ["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests", "--no-conflicts",
         "--no-breaks", "--no-replaces", "--no-enhances", "--installed", *packages],
        capture_output=True, text=True).stdout
    names = {line.strip() for line in out.splitlines() if line and not line.startswith(" ")}
    return {n.split(":")[0] for n in names} | set(packages)


@functools.lru_cache(maxsize=None)
def owner_of(path):
    return subprocess.run(["dpkg", "-S", path], capture_output=True, text=True).stdout


def linked_packages(program):
    out = subprocess.run(["ldd", str(program)], capture_output=True, text=True, check=True).stdout
    missing = [line for line in out.splitlines() if "not found" in line]
    assert not missing, f"{program}: {missing}"
    pkgs = {}
    for line in out.splitlines():
        if "=>" not in line:
            continue
        lib, where = line.split("=>")
        path = where.split("(")[0].strip()
        # dpkg knows a file by the path its package ships it at (/lib or /usr/lib).
        for candidate in (path, path.replace("/usr/lib/", "/lib/", 1), path.replace("/lib/", "/usr/lib/", 1)):
            owner = owner_of(candidate)
            if owner:
                pkgs[lib.strip()] = owner.splitlines()[0].split(":")[0]
                break
    return pkgs


@pytest.mark.skipif(shutil.which("apt-cache") is None or shutil.which("dpkg") is None,
                    reason="needs dpkg and apt-cache (Debian)")
def test_the_guest_image_carries_every_library_the_guest_programs_link():
    have = closure(guest_packages())
    programs = [BUILD / p for p in GUEST_PROGRAMS if (BUILD / p).exists()]
    assert programs, f"no guest program built under {BUILD}"
    lacking = {}
    for program in programs:
        for lib, pkg in linked_packages(program).items():
            if pkg not in have:
                lacking.setdefault(pkg, set()).add(f"{program.name}:{lib}")
    assert not lacking, ("add these packages to GUEST_PKGS in scripts/rdma-testbed: "
                         + ", ".join(f"{p} ({sorted(v)})" for p, v in sorted(lacking.items())))
