# JUnit XML in plain shell, for places without python (the RDMA testbed guest).
# Source it. scripts/lib/tally.py counts what these functions write.
#
# A results folder holds two kinds of files, merged *.xml first, then *.cases,
# each in name order:
#   NAME.xml    a whole document (<testsuites> root, <testsuite> children,
#               each element on its own line), e.g. gtest's --gtest_output=xml
#   NAME.cases  <testcase> elements appended one at a time; they become the
#               suite NAME. Appending keeps finished cases when a run dies.
# shellcheck shell=bash

# Text safe for an XML attribute or element: escapes, and drops what XML 1.0
# forbids and program output may carry: control characters, invalid UTF-8.
if printf 'x' | iconv -c -f UTF-8 -t UTF-8 > /dev/null 2>&1; then _junit_iconv=1; else _junit_iconv=0; fi
junit_escape() {
  local s
  if [ $_junit_iconv = 1 ]; then
    s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037' | iconv -c -f UTF-8 -t UTF-8)
  else
    s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037\200-\377')
  fi
  # Quoted replacements: bash 5.2 reads a bare & there as the matched text.
  s=${s//&/"&amp;"}
  s=${s//</"&lt;"}
  s=${s//>/"&gt;"}
  s=${s//\"/"&quot;"}
  s=${s//\'/"&apos;"}
  printf '%s' "$s"
}

# junit_case NAME CLASSNAME SECONDS pass|fail|skip MESSAGE [OUTPUT_FILE]
# prints one <testcase>; the last 200 lines of OUTPUT_FILE go into it.
junit_case() {
  local name=$1 cls=$2 secs=$3 status=$4 msg=$5 outf=${6:-} out=""
  [ -n "$outf" ] && [ -f "$outf" ] && out=$(tail -n 200 "$outf")
  printf '    <testcase name="%s" classname="%s" time="%s">' \
    "$(junit_escape "$name")" "$(junit_escape "$cls")" "$secs"
  case $status in
    fail) printf '<failure message="%s">%s</failure>' "$(junit_escape "$msg")" "$(junit_escape "$out")" ;;
    skip) printf '<skipped message="%s"/>' "$(junit_escape "$msg")" ;;
  esac
  [ "$status" != fail ] && [ -n "$out" ] && printf '<system-out>%s</system-out>' "$(junit_escape "$out")"
  printf '</testcase>\n'
}

# junit_case_doc FILE SUITE NAME SECONDS STATUS MESSAGE [OUTPUT_FILE]: a document of one case.
junit_case_doc() {
  local file=$1 suite=$2
  shift 2
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo '<testsuites>'
    printf '  <testsuite name="%s">\n' "$(junit_escape "$suite")"
    junit_case "$1" "$suite" "${@:2}"
    echo '  </testsuite>'
    echo '</testsuites>'
  } > "$file.tmp" && mv "$file.tmp" "$file"
}

# junit_single_failure FILE SUITE NAME MESSAGE [OUTPUT_FILE]
junit_single_failure() { junit_case_doc "$1" "$2" "$3" 0 fail "$4" "${5:-}"; }

# A document is usable when it is complete: gtest writes it only at exit, so a
# killed program leaves none or a truncated one.
junit_doc_complete() {
  grep -q '^<testsuites' "$1" 2> /dev/null && [ "$(grep -v '^[[:space:]]*$' "$1" | tail -n 1)" = '</testsuites>' ]
}

# junit_merge OUT DIR: one document from DIR's *.xml and *.cases, written atomically.
junit_merge() {
  local out=$1 dir=$2 f
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo '<testsuites name="rdma">'
    for f in "$dir"/*.xml "$dir"/*.cases; do
      [ -f "$f" ] || continue
      case $f in
        *.cases)
          printf '  <testsuite name="%s">\n' "$(junit_escape "$(basename "$f" .cases)")"
          cat "$f"
          echo '  </testsuite>'
          ;;
        *)
          if junit_doc_complete "$f"; then
            # Keep the children of the root: drop the declaration and the root tags.
            sed -e '/^<?xml/d' -e '/^<testsuites[ >]/d' -e '/^<testsuites$/d' -e '/^<\/testsuites>/d' "$f"
          else
            echo '  <testsuite name="results">'
            junit_case "$(basename "$f")" results 0 fail \
              "$f is incomplete: the program that writes it was killed or crashed"
            echo '  </testsuite>'
          fi
          ;;
      esac
    done
    echo '</testsuites>'
  } > "$out.tmp" && mv "$out.tmp" "$out"
}
