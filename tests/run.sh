#!/bin/sh
# run.sh [TEST...]: runs the test files (all of tests/*.t by default)
# three at a time (JOBS=N for another number) with TAP::Harness and ends
# with "N passed, N failed".  Three on two CPUs: most files spend much
# of their time waiting on servers, timeouts and Retry-After.
cd "$(dirname "$0")/.." || exit 2
[ $# -gt 0 ] || set -- tests/*.t
exec perl -MTAP::Harness -e '
	my $h = TAP::Harness->new({ jobs => $ENV{JOBS} || 3,
	    verbosity => $ENV{VERBOSE} ? 1 : 0, merge => 0,
	    exec => ["/bin/sh"] });
	my $agg = $h->runtests(@ARGV);
	my ($pass, $fail) = (0, 0);
	for my $t ($agg->descriptions) {
		my ($p) = $agg->parsers($t);
		$pass += scalar $p->passed;
		$fail += scalar $p->failed;
		# A script that died or missed its plan is a failure too.
		$fail++ if !$p->failed && ($p->exit || $p->wait || $p->has_problems);
	}
	print "$pass passed, $fail failed\n";
	exit($fail ? 1 : 0);
' "$@"
