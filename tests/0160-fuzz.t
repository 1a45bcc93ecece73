#!/bin/sh
# The fuzz targets (always built, tests/fuzz/) take the inputs they were
# written for without a crash, a leak or undefined behaviour (the
# sanitizer build of the suite runs them too).  The DN target also
# aborts if a DN is not equal to and under itself.
. "$(dirname "$0")/lib.sh"

F=$BIN/../fuzz
ok "DN comparison on tricky DNs" "$F/dn" "$TOP"/tests/fuzz/corpus/dn/*
ok "config parsing on every example" "$F/config" "$TOP"/examples/*.yaml
ok "snapshot parsing on the recorded snapshots" "$F/snapshot" "$TOP"/tests/data/diff/*.snap
ok "change set parsing on the recorded plans" "$F/changeset" "$TOP"/tests/data/diff/*.json
# Truncated and corrupted copies of the inputs.
i=0
for f in "$TOP"/tests/data/diff/ad.snap "$TOP"/tests/data/diff/ops.json "$TOP"/examples/demo.yaml; do
	i=$((i + 1))
	head -c 777 "$f" >"$T/cut.$i"
	tr 'a-f{' 'A-F[' <"$f" >"$T/bent.$i"
done
ok "snapshot parsing on truncated and corrupted input" "$F/snapshot" "$T"/cut.* "$T"/bent.*
ok "change set parsing on truncated and corrupted input" "$F/changeset" "$T"/cut.* "$T"/bent.*
ok "config parsing on truncated and corrupted input" "$F/config" "$T"/cut.* "$T"/bent.*
done_testing
