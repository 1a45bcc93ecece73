#!/bin/sh
# sync-export tells how far it is and what it waits for, and reports
# what it did, against the Graph emulator: progress lines (newline-
# separated when standard error is a file, one line rewritten with \r on
# a terminal and cleared at the end); quiet mode (-q) that says nothing
# when nothing changed, but still the failures; the JSON summary (-S)
# and the Prometheus textfile (-M), written atomically; and a notice on
# standard error while it retries an unreachable or throttled service.
. "$(dirname "$0")/lib.sh"
. "$TOP/tests/graph.sh"

EMU=$TOP/tests/graph-emulator.py
TENANT=contoso.example
CID=3f1c2a9e-6b1d-4c55-9a0e-2b7c1d9e0a11

command -v script >/dev/null 2>&1 ||
	_lib_fatal "script(1) is installed (util-linux)"

emu_app "$CID" "$T/secret"
emu_start emu --seed 1 || { fail "the emulator starts"; done_testing; }
BASE=http://127.0.0.1:$(cat "$T/emu.port")

. "$TOP/tests/export-faults.sh"

: >"$T/empty"
fx_conf 4 300 10
test_expect_code 0 "promote this server" sync-role -c "$T/sync.yaml" promote

# --------------------------------------------------- progress in a file
# 1100 users: 55 batches of writes in phase 1, past the 50 batches after
# which a line is printed when standard error is not a terminal.
fx_fresh
fx_gen "$T/src.snap" 1100 5
fx_plan big || fail "a plan of 1100 users and 5 groups"
test_expect_code 0 "an export with standard error to a file" \
	sync-export -c "$T/sync.yaml" -S "$T/big.json" -M "$T/big.prom" "$T/big.plan"
cp "$T/err" "$T/big.err"
test_grep "... a progress line with the phase and the counts" \
	'^sync-export: phase 1/3 users: [0-9]{1,3}(,[0-9]{3})?/1,100 changes, 0 retries$' "$T/big.err"
test_no_grep "... no carriage return in a file" "$(printf '\r')" "$T/big.err"
test_grep "... then the summary line" \
	'^sync-export: 1105 applied, 0 already in place, 0 failed, 0 not applied \(conflicts and errors\)$' \
	"$T/big.err"
grep -c '^sync-export: phase' "$T/big.err" >"$T/n"
echo 1 >"$T/want"
test_cmp "... one progress line for 65 batches (every 50 batches or 10 s)" "$T/want" "$T/n"

# ----------------------------------------------------- the JSON summary
python3 - "$T/big.json" "$T/big.plan" >"$T/sum.out" 2>&1 <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
want = {"program": "sync-export", "plan": sys.argv[2], "target": "entra",
        "dry_run": False, "staging": False, "exit_status": 0, "error": None,
        "applied": 1105, "skipped": 0, "failed": 0, "not_applied": 0,
        "resumed": 0, "retries": 0, "throttled": 0}
for k, v in want.items():
    if s.get(k, "missing") != v:
        print("%s: %r, want %r" % (k, s.get(k, "missing"), v))
for k in ("batches", "writes"):
    if not isinstance(s.get(k), int) or s[k] < 56:
        print("%s: %r" % (k, s.get(k)))
t = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
for k in ("started", "ended"):
    if not re.match(t, s.get(k, "")):
        print("%s: %r" % (k, s.get(k)))
if not s["started"] <= s["ended"]:
    print("started after ended")
if not (isinstance(s.get("duration_seconds"), float) and
        0 <= s["duration_seconds"] < 600):
    print("duration_seconds: %r" % s.get("duration_seconds"))
if not re.match(r"^\d+\.\d+\.\d+", s.get("version", "")):
    print("version: %r" % s.get("version"))
PY
test_cmp "the summary (-S) parses and holds the run's counts" "$T/empty" "$T/sum.out"

# ------------------------------------------------ the Prometheus textfile
# The exposition format, as node_exporter's textfile collector reads it:
# HELP and TYPE once per metric, before its samples; each other line
# "name{labels} value".
promcheck() {
	python3 - "$1" <<'PY'
import re, sys
seen, typed = set(), set()
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    m = re.match(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$", line)
    if m:
        if m.group(1) == "TYPE":
            if m.group(3) not in ("gauge", "counter"):
                print("%d: type %s" % (n, m.group(3)))
            typed.add(m.group(2))
        continue
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
                 r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? '
                 r'(-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)$', line)
    if not m:
        print("%d: not a sample: %r" % (n, line))
    elif m.group(1) not in typed:
        print("%d: %s has no TYPE before it" % (n, m.group(1)))
    elif (m.group(1), m.group(2)) in seen:
        print("%d: %s%s twice" % (n, m.group(1), m.group(2) or ""))
    else:
        seen.add((m.group(1), m.group(2)))
PY
}
promcheck "$T/big.prom" >"$T/prom.out" 2>&1
test_cmp "the textfile (-M) is in the exposition format" "$T/empty" "$T/prom.out"
note_file "$T/prom.out"
grep -v '^#' "$T/big.prom" | grep -v 'duration_seconds\|timestamp_seconds\|batches\|writes' >"$T/prom.got"
cat >"$T/prom.want" <<'EOF2'
sync_export_changes{target="entra",outcome="applied"} 1105
sync_export_changes{target="entra",outcome="skipped"} 0
sync_export_changes{target="entra",outcome="failed"} 0
sync_export_changes{target="entra",outcome="not_applied"} 0
sync_export_changes{target="entra",outcome="resumed"} 0
sync_export_retries{target="entra"} 0
sync_export_throttled{target="entra"} 0
sync_export_exit_status{target="entra"} 0
sync_export_staging{target="entra"} 0
EOF2
test_cmp "... with the run's counts and exit status" "$T/prom.want" "$T/prom.got"
test_grep "... its duration" '^sync_export_duration_seconds\{target="entra"\} [0-9]+(\.[0-9]+)?$' "$T/big.prom"
test_grep "... and when it ran" '^sync_export_last_run_timestamp_seconds\{target="entra"\} 1[0-9]{9}$' "$T/big.prom"
ls -l "$T/big.prom" >"$T/ls"
test_grep "... readable by the collector (mode 0644)" '^-rw-r--r--' "$T/ls"
ls "$T" >"$T/ls"
test_no_grep "... no temporary file left beside them" '\.tmp\.' "$T/ls"

# ------------------------------------------------------------ quiet mode
# The same plan again: all done by the first run, nothing to say.
test_expect_code 0 "-q: the same plan again, nothing changed" \
	sync-export -q -c "$T/sync.yaml" -M "$T/big.prom" "$T/big.plan"
test_cmp "... says nothing" "$T/empty" "$T/err"
test_grep "... the textfile counts the resumed changes" \
	'^sync_export_changes\{target="entra",outcome="resumed"\} 1105$' "$T/big.prom"

# A plan with no changes at all.
sync-import -q -c "$T/sync.yaml" -o "$T/now.entra" entra &&
sync-diff -c "$T/sync.yaml" -o "$T/none.plan" "$T/src.snap" "$T/now.entra" 2>"$T/diff.err"
test $? -eq 0 || fail "an empty plan once the target is in line"
test_expect_code 0 "-q: an empty plan" \
	sync-export -q -c "$T/sync.yaml" -S "$T/none.json" "$T/none.plan"
test_cmp "... says nothing" "$T/empty" "$T/err"
test_cmp "... and nothing on standard output" "$T/empty" "$T/out"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["applied"], s["skipped"], s["failed"], s["exit_status"])' \
	"$T/none.json" >"$T/got"
echo "0 0 0 0" >"$T/want"
test_cmp "... the summary says so" "$T/want" "$T/got"

# Changes applied: the summary line, also with -q.
fx_gen "$T/src.snap" 1100 5 v2
fx_plan v2 || fail "a plan of a few changes"
test_expect_code 0 "-q: a plan with changes" sync-export -q -c "$T/sync.yaml" "$T/v2.plan"
test_grep "... prints the summary line" '^sync-export: [1-9][0-9]* applied, [0-9]+ already in place, 0 failed' "$T/err"
test_no_grep "... but no progress" '^sync-export: phase' "$T/err"

# A change that fails: its line and the summary, exit 1.
fx_gen "$T/src.snap" 1100 5 bad
fx_plan bad || fail "a plan with a change the service refuses"
test_expect_code 1 "-q: a plan with a failing change" \
	sync-export -q -c "$T/sync.yaml" -S "$T/bad.json" -M "$T/bad.prom" "$T/bad.plan"
test_grep "... prints the failure" "^sync-export: line [0-9]+: update user 'dXNlcg0004==' failed: 400 " "$T/err"
test_grep "... and the summary line" '^sync-export: [0-9]+ applied, [0-9]+ already in place, 1 failed, 0 not applied' "$T/err"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["failed"], s["exit_status"])' \
	"$T/bad.json" >"$T/got"
echo "1 1" >"$T/want"
test_cmp "... the summary counts the failure" "$T/want" "$T/got"
test_grep "... and so does the textfile" '^sync_export_changes\{target="entra",outcome="failed"\} 1$' "$T/bad.prom"
test_grep "... with exit status 1" '^sync_export_exit_status\{target="entra"\} 1$' "$T/bad.prom"

# An error (exit 2) is printed with -q, and reported.
test_expect_code 2 "-q: a plan that cannot be read" \
	sync-export -q -c "$T/sync.yaml" -S "$T/err.json" -M "$T/err.prom" "$T/nosuch.plan"
test_grep "... prints the error" "^sync-export: cannot open '$T/nosuch.plan'" "$T/err"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["exit_status"], s["error"].startswith("cannot open"))' \
	"$T/err.json" >"$T/got"
echo "2 True" >"$T/want"
test_cmp "... the summary has the exit status and the error" "$T/want" "$T/got"
test_grep "... the textfile the exit status" '^sync_export_exit_status 2$' "$T/err.prom"
promcheck "$T/err.prom" >"$T/prom.out" 2>&1
test_cmp "... in the exposition format" "$T/empty" "$T/prom.out"

# A staging server: exit 1, silent with -q, said in the reports.
test_expect_code 0 "demote this server" sync-role -c "$T/sync.yaml" demote
test_expect_code 1 "-q on a staging server" \
	sync-export -q -c "$T/sync.yaml" -S "$T/st.json" "$T/bad.plan"
test_cmp "... says nothing" "$T/empty" "$T/err"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["staging"], s["exit_status"])' \
	"$T/st.json" >"$T/got"
echo "True 1" >"$T/want"
test_cmp "... the summary says staging" "$T/want" "$T/got"
test_expect_code 1 "without -q" sync-export -c "$T/sync.yaml" "$T/bad.plan"
test_grep "... says so" "^sync-export: not the active server" "$T/err"
test_expect_code 0 "promote this server again" sync-role -c "$T/sync.yaml" promote

# A dry run has its summary too; not on standard output, which is its.
test_expect_code 0 "-n with -S" sync-export -n -c "$T/sync.yaml" -S "$T/dry.json" "$T/bad.plan"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["dry_run"], s["exit_status"], s["applied"])' \
	"$T/dry.json" >"$T/got"
echo "True 0 0" >"$T/want"
test_cmp "... the summary says dry run" "$T/want" "$T/got"
test_expect_code 2 "-n with -S -" sync-export -n -c "$T/sync.yaml" -S - "$T/bad.plan"
echo "sync-export: -n writes to standard output: give -M and -S a file" >"$T/want"
test_cmp "... is refused" "$T/want" "$T/err"

# ---------------------------------------------------------- on a terminal
# script(1) gives the export a terminal; -e passes its exit status on.
fx_fresh
fx_gen "$T/src.snap" 300 5
fx_plan tty || fail "a plan of 300 users"
test_expect_code 0 "an export on a terminal" \
	script -qfec "sync-export -c '$T/sync.yaml' '$T/tty.plan'" "$T/tty.out"
python3 - "$T/tty.out" >"$T/tty.got" 2>&1 <<'PY'
import sys
t = open(sys.argv[1], "rb").read().decode()
# One line rewritten in place: each drawing starts with \r ESC [K and
# ends without a newline; the last one is cleared before the summary.
draws = t.split("\r\x1b[K")
lines = [d for d in draws[1:] if d.startswith("sync-export: phase")]
print("drawings:", "yes" if len(lines) >= 4 else len(lines))
print("no newline in a drawing:",
      all("\n" not in d for d in lines))
print("last drawing:", lines[-1] if lines else None)
# script(1) may end the file with a line of its own.
print("cleared, then:", draws[-1].splitlines()[0] if draws[-1] else "")
PY
cat >"$T/tty.want" <<'EOF2'
drawings: yes
no newline in a drawing: True
last drawing: sync-export: phase 3/3 members: 5/5 changes, 0 retries
cleared, then: sync-export: 305 applied, 0 already in place, 0 failed, 0 not applied (conflicts and errors)
EOF2
test_cmp "... one line rewritten with \\r, cleared at the end" "$T/tty.want" "$T/tty.got"
test_grep "... such as phase 1 done" "$(printf '\r\033')\[Ksync-export: phase 1/3 users: 300/300 changes, 0 retries" "$T/tty.out"

# ------------------------------------------- notices of long waits
# The service answers the first $batch 503 with Retry-After 6: a notice
# before the wait, with the URL, the status and the attempt.
fx_fresh
fx_gen "$T/src.snap" 3 0
fx_plan n503 || fail "a plan of three users"
ctl /_emulator/faults '{"rules": [{"method": "POST", "path": "^/v1.0/\\$batch$", "action": "503", "retry_after": "6", "times": 1, "in_batch": false}]}' >/dev/null
test_expect_code 0 "a \$batch answered 503 with Retry-After 6" \
	sync-export -c "$T/sync.yaml" -S "$T/n503.json" "$T/n503.plan"
test_grep "... says that it waits, and why" \
	"^sync-export: entra: POST $BASE/v1.0/\\\$batch: 503 service unavailable \(Retry-After 6 s\); retrying in 6 s \(attempt 2\)$" "$T/err"
python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(s["retries"], s["throttled"])' \
	"$T/n503.json" >"$T/got"
echo "1 1" >"$T/want"
test_cmp "... the summary counts the retry and the throttling" "$T/want" "$T/got"

# Inside a $batch: a create answered 429 with Retry-After 6.
fx_fresh
fx_plan n429 || fail "a plan of three users again"
ctl /_emulator/faults '{"rules": [{"method": "POST", "path": "^/v1.0/users$", "action": "429", "retry_after": "6", "times": 1, "batch_only": true}]}' >/dev/null
test_expect_code 0 "a create inside a \$batch answered 429 with Retry-After 6" \
	sync-export -c "$T/sync.yaml" "$T/n429.plan"
test_grep "... says that every connection waits" \
	"^sync-export: entra: POST $BASE/v1.0/\\\$batch: a request throttled \(429\); every connection waits 6 s \(attempt 2\)$" "$T/err"
test_expect_code 0 "-q: the same" sync-export -q -c "$T/sync.yaml" "$T/n429.plan"
test_cmp "... is quiet (all done already)" "$T/empty" "$T/err"

# The writer's own quota: 20 writes per 6 s, and 40 users to create.
sed 's/^    create_settle: 10$/&\n    write_limit: 20\n    write_window: 6/' \
	"$T/sync.yaml" >"$T/quota.yaml"
cp "$T/quota.yaml" "$T/sync.yaml"
fx_fresh
fx_gen "$T/src.snap" 40 0
fx_plan quota || fail "a plan of 40 users"
test_expect_code 0 "writes held back by write_limit for 6 s" \
	sync-export -c "$T/sync.yaml" "$T/quota.plan"
test_grep "... says why it pauses" \
	'^sync-export: entra: the write quota of 20 writes per 6 s is used up; writes wait [56] s$' \
	"$T/err"

# An unreachable service: the emulator starts 8 s after the export, on
# the port of the configuration.  The export retries the token request,
# and says so while it waits, instead of staying silent.
P=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE0=$BASE
BASE=http://127.0.0.1:$P
fx_conf 4 300 10
python3 "$EMU" --port "$P" --apps-file "$T/apps.json" --tenant "$TENANT" \
	--log "$T/late0.log" >"$T/late0.out" 2>&1 3>&- &
late=$!
_lib_pids="$_lib_pids $late"
i=0
until ctl /_emulator/faults >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -gt 100 ] && break
	sleep 0.05
done
fx_gen "$T/src.snap" 3 0
fx_plan late || fail "a plan against the emulator on port $P"
kill "$late"
wait "$late" 2>/dev/null
(sleep 8; exec python3 "$EMU" --port "$P" --apps-file "$T/apps.json" \
	--tenant "$TENANT" --log "$T/late.log" >"$T/late.out" 2>&1 3>&-) &
_lib_pids="$_lib_pids $!"
late2=$!
test_expect_code 0 "an export while the service is unreachable for 8 s" \
	sync-export -c "$T/sync.yaml" -S "$T/late.json" "$T/late.plan"
test_grep "... says that it retries, and why" \
	"^sync-export: entra: POST $BASE/$TENANT/oauth2/v2\.0/token: Failed to connect to 127\.0\.0\.1 port $P [^;]*; retrying in [0-9.]+ s \(attempt [0-9]+\)$" \
	"$T/err"
grep -c 'retrying in' "$T/err" >"$T/n"
test_grep "... at most one notice per 5 s" '^[12]$' "$T/n"
test_grep "... then applies the plan" '^sync-export: 3 applied, 0 already in place, 0 failed' "$T/err"

# sync-import goes through the same HTTP layer: the same notice.
kill "$late2" 2>/dev/null
wait "$late2" 2>/dev/null
(sleep 8; exec python3 "$EMU" --port "$P" --apps-file "$T/apps.json" \
	--tenant "$TENANT" --log "$T/late2.log" >"$T/late2.out" 2>&1 3>&-) &
_lib_pids="$_lib_pids $!"
test_expect_code 0 "an import while the service is unreachable for 8 s" \
	sync-import -c "$T/sync.yaml" -o "$T/late.entra" entra
test_grep "... says that it retries, and why" \
	"^sync-import: entra: POST $BASE/$TENANT/oauth2/v2\.0/token: Failed to connect to 127\.0\.0\.1 port $P [^;]*; retrying in [0-9.]+ s \(attempt [0-9]+\)$" \
	"$T/err"
test_grep "... then reads the users" '^sync-import: entra: 0 users, 0 groups' "$T/err"
BASE=$BASE0

done_testing
