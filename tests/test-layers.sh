#!/bin/sh
# The daemon's modules call each other in one direction only: builds the
# call graph between daemon/*.c from the objects' symbol tables (a
# module that uses a function another defines depends on it) and fails on
# any cycle. Callbacks registered through function pointers (conn_ops,
# loop_on, journal_on_progress) are how a lower module reaches a higher
# one; they take no symbol and so make no edge. Also checks that no
# daemon .c file is much over 800 lines.
# Prints TAP. Runs from the repository root with the objects built
# ($BUILD, default build), as `make test` does.
set -eu

BUILD=${BUILD:-build}
objs=$(ls "$BUILD"/daemon/*.o 2>/dev/null | grep -v '/kvswapd\.o$' || true)
if [ -z "$objs" ]; then
	echo "Bail out! no daemon objects under $BUILD/daemon: build first"
	exit 1
fi

# module<TAB>defines|uses<TAB>symbol
for o in $objs; do
	m=$(basename "$o" .o)
	nm -g "$o" | awk -v m="$m" '
		$1 == "U" { print m "\tuses\t" $2 }
		NF == 3 && $2 ~ /[TDBR]/ { print m "\tdefines\t" $3 }'
done | perl -e '
	my (%def, %uses, %edge);
	while (<STDIN>) {
		chomp;
		my ($m, $k, $s) = split /\t/;
		if ($k eq "defines") { $def{$s} = $m } else { push @{$uses{$m}}, $s }
	}
	for my $m (keys %uses) {
		for my $s (@{$uses{$m}}) {
			my $d = $def{$s};
			$edge{$m}{$d} = $s if defined $d && $d ne $m;
		}
	}
	my @mods = sort keys %{{ map { $_ => 1 } values %def, keys %uses }};
	my (%state, @stack, @cycles);
	my $visit;
	$visit = sub {
		my $m = shift;
		$state{$m} = 1;
		push @stack, $m;
		for my $d (sort keys %{$edge{$m} || {}}) {
			if (($state{$d} || 0) == 1) {
				my @c = @stack;
				shift @c while $c[0] ne $d;
				push @cycles, join(" -> ", @c, $d);
			} elsif (!$state{$d}) {
				$visit->($d);
			}
		}
		pop @stack;
		$state{$m} = 2;
	};
	$visit->($_) for grep { !$state{$_} } @mods;
	print "1..2\n";
	if (@cycles) {
		print "# cycle: $_\n" for @cycles;
		print "not ok 1 - no circular calls between daemon modules\n";
	} else {
		print "ok 1 - no circular calls between daemon modules\n";
	}
	for my $m (@mods) {
		my @d = sort keys %{$edge{$m} || {}};
		print "# $m -> @d\n";
	}
'
big=$(wc -l daemon/*.c | awk '$2 != "total" && $1 > 850 { print $2 " (" $1 " lines)" }')
if [ -z "$big" ]; then
	echo "ok 2 - no daemon .c file over 850 lines"
else
	echo "# $big"
	echo "not ok 2 - no daemon .c file over 850 lines"
fi
