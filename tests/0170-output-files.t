#!/bin/sh
# -o FILE: outputs hold personal data.  A new output is 0600, a rewritten
# one keeps its mode and owner; a character device or a FIFO is written
# into, never replaced; a directory, a block device and a symbolic link
# to a regular file are refused.  sync-diff is the writer here; the other
# tools write through the same code (lib/file.c).
. "$(dirname "$0")/lib.sh"

D=$TOP/tests/data/diff
cd "$D" || bail "no $D"
umask 022

# mode FILE: its permission bits, in octal
mode() { stat -c %a "$1"; }

# notmp: no temporary file was left beside the outputs
notmp() {
	set -- "$T"/*.tmp.*
	if [ -e "$1" ]; then fail "... no temporary file left" "$*"; else
		pass "... no temporary file left"; fi
}

test_expect_code 1 "the plan on standard output" \
	sync-diff -c sync.yaml ad.snap entra.snap
cp "$T/out" "$T/plan.want"

# ------------------------------------------------------------ modes
test_expect_code 1 "a new output" \
	sync-diff -c sync.yaml -o "$T/new.json" ad.snap entra.snap
echo 600 >"$T/want"
mode "$T/new.json" >"$T/got"
test_cmp "... is 0600 (umask 022)" "$T/want" "$T/got"
test_cmp "... holds the plan" "$T/plan.want" "$T/new.json"

for m in 600 640 444; do
	echo old >"$T/old$m.json"
	chmod "$m" "$T/old$m.json"
	test_expect_code 1 "rewriting an output of mode $m" \
		sync-diff -c sync.yaml -o "$T/old$m.json" ad.snap entra.snap
	echo "$m" >"$T/want"
	mode "$T/old$m.json" >"$T/got"
	test_cmp "... keeps its mode" "$T/want" "$T/got"
	test_cmp "... and holds the plan" "$T/plan.want" "$T/old$m.json"
done

echo old >"$T/owned.json"
chown 1234:2345 "$T/owned.json"
test_expect_code 1 "rewriting an output of another owner (as root)" \
	sync-diff -c sync.yaml -o "$T/owned.json" ad.snap entra.snap
echo 1234:2345 >"$T/want"
stat -c %u:%g "$T/owned.json" >"$T/got"
test_cmp "... keeps its owner and group" "$T/want" "$T/got"

# ------------------------------------------------------------ devices
# Made here with mknod: /dev/null itself is not for tests to risk.
mknod "$T/null" c 1 3
test_expect_code 1 "-o a character device (a null device)" \
	sync-diff -c sync.yaml -o "$T/null" ad.snap entra.snap
if [ -c "$T/null" ]; then pass "... is still a character device"; else
	fail "... is still a character device" "$(ls -l "$T/null")"; fi
notmp

mknod "$T/full" c 1 7
test_expect_code 2 "-o a full device: exit 2" \
	sync-diff -c sync.yaml -o "$T/full" ad.snap entra.snap
echo "sync-diff: cannot write '$T/full': No space left on device" >"$T/want"
test_cmp "... says it cannot write" "$T/want" "$T/err"
if [ -c "$T/full" ]; then pass "... is still a character device"; else
	fail "... is still a character device" "$(ls -l "$T/full")"; fi

mkfifo "$T/fifo"
timeout 10 cat "$T/fifo" >"$T/fifo.out" &
reader=$!
test_expect_code 1 "-o a FIFO" \
	timeout 10 sync-diff -c sync.yaml -o "$T/fifo" ad.snap entra.snap
# Unblocks the reader if the FIFO was replaced rather than written.
[ -p "$T/fifo" ] || kill "$reader" 2>/dev/null
wait "$reader"
test_cmp "... the reader gets the plan" "$T/plan.want" "$T/fifo.out"
if [ -p "$T/fifo" ]; then pass "... is still a FIFO"; else
	fail "... is still a FIFO" "$(ls -l "$T/fifo")"; fi

# ------------------------------------------------------------ refused
mkdir "$T/dir"
test_expect_code 2 "-o a directory: exit 2" \
	sync-diff -c sync.yaml -o "$T/dir" ad.snap entra.snap
echo "sync-diff: cannot write '$T/dir': it is a directory, not a regular file, a character device or a FIFO" >"$T/want"
test_cmp "... says why" "$T/want" "$T/err"
notmp

mknod "$T/blk" b 7 200
test_expect_code 2 "-o a block device: exit 2" \
	sync-diff -c sync.yaml -o "$T/blk" ad.snap entra.snap
echo "sync-diff: cannot write '$T/blk': it is a block device, not a regular file, a character device or a FIFO" >"$T/want"
test_cmp "... says why" "$T/want" "$T/err"
if [ -b "$T/blk" ]; then pass "... is still a block device"; else
	fail "... is still a block device" "$(ls -l "$T/blk")"; fi

echo precious >"$T/target"
ln -s target "$T/link.json"
test_expect_code 2 "-o a symbolic link to a file: exit 2" \
	sync-diff -c sync.yaml -o "$T/link.json" ad.snap entra.snap
echo "sync-diff: cannot write '$T/link.json': it is a symbolic link (give the path of the file it points to)" >"$T/want"
test_cmp "... says why" "$T/want" "$T/err"
echo precious >"$T/want"
test_cmp "... the file it points to is untouched" "$T/want" "$T/target"
if [ -L "$T/link.json" ]; then pass "... the link stays"; else
	fail "... the link stays"; fi

# A link to a character device is followed (/dev/stdout is one).
ln -s null "$T/nulllink"
test_expect_code 1 "-o a symbolic link to a character device" \
	sync-diff -c sync.yaml -o "$T/nulllink" ad.snap entra.snap
if [ -L "$T/nulllink" ] && [ -c "$T/null" ]; then
	pass "... the link and the device stay"; else
	fail "... the link and the device stay"; fi
notmp

done_testing
