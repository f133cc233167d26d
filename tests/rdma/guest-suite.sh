#!/usr/bin/env bash
# The RDMA test group. `scripts/rdma-testbed test` runs it inside the testbed
# guest (soft-RoCE devices rxe0/rxe1), once per boot; see docs/rdma-testbed.md.
#
#   tests/rdma/guest-suite.sh [--list FILE] [PROGRAM|GLOB ...]
#
# Which programs: the arguments and the lines of --list FILE (blank lines and
# # comments ignored), else $SLUICE_RDMA_TESTS (space-separated), else every
# executable $SLUICE_BUILD/tests/rdma/guest_*. Relative paths and globs are
# taken from $SLUICE_BUILD.
#
# Each program is a GoogleTest binary, run from $SLUICE_BUILD as
#   PROGRAM --gtest_output=xml:$SLUICE_BUILD/rdma-results/NAME.xml
# under `timeout $SLUICE_RDMA_TEST_TIMEOUT` (default 300 s) with RXE0_IP,
# RXE1_IP, SLUICE_RDMA_TESTBED=1, SLUICE_SOURCE_ROOT and SLUICE_BUILD_ROOT set.
# Its cases count as they are; a program that exits non-zero without a failed
# case (crash, timeout, leak report, not a gtest binary) adds one failing case
# named after it, so nothing fails silently.
#
# Before the programs, the testbed checks of scripts/lib/rdma-checks.sh run as
# the suite `testbed` (choose them with SLUICE_RDMA_CHECKS="name ..."; empty
# runs none), so a broken guest is told apart from a broken sluice.
#
# Results: ONE JUnit file, ${SLUICE_BUILD:-build}/rdma-junit.xml (what
# scripts/test tallies); logs and per-program files in rdma-results/.
# Exit status 0 when every case passed.
set -uo pipefail
SLUICE_ROOT=${SLUICE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
SLUICE_BUILD=${SLUICE_BUILD:-$SLUICE_ROOT/build}
SLUICE_BUILD=$(cd "$SLUICE_BUILD" && pwd) || { echo "guest-suite: no build folder $SLUICE_BUILD" >&2; exit 2; }
. "$SLUICE_ROOT/scripts/lib/junit.sh"
. "$SLUICE_ROOT/scripts/lib/rdma-checks.sh"

RES=$SLUICE_BUILD/rdma-results
OUT=$SLUICE_BUILD/rdma-junit.xml
TEST_TIMEOUT=${SLUICE_RDMA_TEST_TIMEOUT:-300}
CHECKS=${SLUICE_RDMA_CHECKS-devices write_bw_veth write_bw_rdma_cm rping ucmatose}

say() { echo "guest-suite: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

[ "${SLUICE_RDMA_TESTBED:-}" = 1 ] ||
  say "warning: not inside the testbed guest (scripts/rdma-testbed test); the testbed checks expect rxe0/rxe1"

mkdir -p "$RES"
rm -f "$RES"/*.xml "$RES"/*.cases "$RES"/*.log "$RES"/current "$OUT"

patterns=()
while [ $# -gt 0 ]; do
  case $1 in
    --list)
      [ -f "${2:-}" ] || { say "--list: no such file '${2:-}'"; exit 2; }
      while read -r line; do
        line=${line%%#*}
        # shellcheck disable=SC2206  # a line may hold several names
        [ -n "${line// /}" ] && patterns+=($line)
      done < "$2"
      shift 2
      ;;
    *)
      patterns+=("$1")
      shift
      ;;
  esac
done
# Split into words without globbing here: the patterns are taken from
# $SLUICE_BUILD below, not from the current folder (the source tree, whose
# tests/rdma holds the programs' sources).
set -f
# shellcheck disable=SC2206
[ ${#patterns[@]} -eq 0 ] && patterns=(${SLUICE_RDMA_TESTS:-tests/rdma/guest_*})
set +f

programs=()
cd "$SLUICE_BUILD" || exit 2
shopt -s nullglob
for p in "${patterns[@]}"; do
  matched=0
  # shellcheck disable=SC2206  # the pattern is a glob on purpose
  for f in $p; do
    if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
    programs+=("$(realpath "$f")")
    matched=1
  done
  # A program asked for by name that is not there is a failure, not a silent skip.
  if [ $matched = 0 ] && [[ $p != *[*?[]* ]]; then
    junit_case "$p" programs 0 fail "$p: no such executable in $SLUICE_BUILD (not built?)" >> "$RES/programs.cases"
  fi
done
shopt -u nullglob

# ---- testbed checks ---------------------------------------------------------
for c in $CHECKS; do
  echo "$c (testbed check)" > "$RES/current"
  say "check $c"
  t0=$(now)
  if rdma_check "$c" > "$RES/testbed.$c.log" 2>&1; then
    junit_case "$c" testbed "$(since "$t0")" pass "" >> "$RES/testbed.cases"
    say "ok: $c"
  else
    junit_case "$c" testbed "$(since "$t0")" fail "$RDMA_CHECK_WHY" "$RES/testbed.$c.log" >> "$RES/testbed.cases"
    say "FAILED: $c: $RDMA_CHECK_WHY"
    tail -n 20 "$RES/testbed.$c.log" | sed 's/^/  | /'
  fi
done

# ---- test programs ----------------------------------------------------------
[ ${#programs[@]} -eq 0 ] && say "no RDMA test programs (looked for: ${patterns[*]})"
export SLUICE_ROOT SLUICE_BUILD SLUICE_SOURCE_ROOT=$SLUICE_ROOT SLUICE_BUILD_ROOT=$SLUICE_BUILD GTEST_COLOR=no
for prog in "${programs[@]}"; do
  rel=${prog#"$SLUICE_BUILD"/}
  name=$(basename "$prog")
  xml=$RES/$name.xml
  echo "$rel" > "$RES/current"
  say "run $rel"
  t0=$(now)
  timeout -k 10 "$TEST_TIMEOUT" "$prog" --gtest_output="xml:$xml" > "$RES/$name.log" 2>&1
  rc=$?
  secs=$(since "$t0")
  grep -E '^\[ *(OK|FAILED|SKIPPED|PASSED) *\]' "$RES/$name.log" | sed 's/^/  /'
  if [ -f "$xml" ] && junit_doc_complete "$xml"; then
    # Name the suites after the program: two programs may share a suite name.
    sed -i "s|^  <testsuite name=\"|  <testsuite name=\"$name/|" "$xml"
    has_failure=0
    grep -q '<failure' "$xml" && has_failure=1
  else
    rm -f "$xml"
    has_failure=0
  fi
  why=""
  case $rc in
    0) ;;
    124 | 137) why="$rel timed out after $TEST_TIMEOUT s (SLUICE_RDMA_TEST_TIMEOUT)" ;;
    *) [ $has_failure = 1 ] || why="$rel exited with status $rc$([ $rc -gt 128 ] && echo " (signal $((rc - 128)))")" ;;
  esac
  if [ -n "$why" ]; then
    junit_case "$name" programs "$secs" fail "$why" "$RES/$name.log" >> "$RES/programs.cases"
    say "FAILED: $why"
    tail -n 20 "$RES/$name.log" | sed 's/^/  | /'
  elif [ ! -f "$xml" ]; then
    # Not a gtest binary: its exit status is its one case.
    junit_case "$name" programs "$secs" pass "" "$RES/$name.log" >> "$RES/programs.cases"
  fi
done
rm -f "$RES/current"

junit_merge "$OUT" "$RES"
cases=$(grep -c '<testcase ' "$OUT")
failures=$(grep -c '<failure' "$OUT")
say "$cases case(s), $failures failure(s) -> $OUT"
[ "$failures" = 0 ]
