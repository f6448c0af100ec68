#!/usr/bin/perl
# Turns the raw results of bench/run.sh (DIR/raw/*.json, DIR/machine.txt,
# DIR/commands.txt) into DIR/results.json, one Markdown table on stdout and
# in DIR/report.md, and the plot DIR/throughput.png (via bench/plot.gp).
# Every figure comes from the raw files; nothing here is a constant.
use strict;
use warnings;
use JSON::PP;
use File::Basename qw(dirname);

my $dir = shift // 'build/bench';
my $raw = "$dir/raw";
my $json = JSON::PP->new->canonical->pretty;

sub slurp {
	my ($path) = @_;
	open(my $f, '<', $path) or return undef;
	local $/;
	my $s = <$f>;
	close($f);
	return $s;
}

sub load {
	my ($name) = @_;
	my $s = slurp("$raw/$name.json");
	return undef unless defined $s && length $s;
	# fio may print notes before its JSON.
	$s =~ s/^[^{]*//s;
	my $v = eval { decode_json($s) };
	warn "report: $raw/$name.json: $@" if $@;
	return $v;
}

sub bytes_of {
	my ($s) = @_;
	my %m = (K => 1 << 10, M => 1 << 20, G => 1 << 30);
	return $s =~ /^(\d+)([KMG])$/ ? $1 * $m{$2} : $s;
}

# The figures of one fio run: bytes/s, IOPS, total latency percentiles.
sub fio_summary {
	my ($j) = @_;
	return undef unless $j && $j->{jobs} && @{$j->{jobs}};
	my $job = $j->{jobs}[0];
	my $d = $job->{read}{io_bytes} ? $job->{read} : $job->{write};
	my $lat = $d->{lat_ns}{percentile} ? $d->{lat_ns} : $d->{clat_ns};
	my $p = $lat->{percentile} // {};
	my $gib = ($d->{io_bytes} // 0) / (1 << 30);
	my $cpu_ms = (($job->{usr_cpu} // 0) + ($job->{sys_cpu} // 0)) / 100 *
		     ($job->{job_runtime} // $d->{runtime} // 0);
	return {
		cpu_ms_per_gib => $gib > 0 ? $cpu_ms / $gib : undef,
		bw_bytes_per_s => $d->{bw_bytes},
		iops => $d->{iops},
		lat_us => {
			p50 => ($p->{'50.000000'} // 0) / 1000,
			p99 => ($p->{'99.000000'} // 0) / 1000,
			p999 => ($p->{'99.900000'} // 0) / 1000,
			mean => ($lat->{mean} // 0) / 1000,
		},
		usr_cpu_pct => $job->{usr_cpu},
		sys_cpu_pct => $job->{sys_cpu},
		errors => $job->{error},
	};
}

my $machine = slurp("$dir/machine.txt") // '';
my @commands = split /\n/, (slurp("$dir/commands.txt") // '');

sub median {
	my @v = sort { $a <=> $b } grep { defined } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# The runs of one kind: name-r1, name-r2, ... (or just name).
sub reps {
	my ($name) = @_;
	my @r;
	for (my $i = 1; ; $i++) {
		my $j = load("$name-r$i") or last;
		push @r, $j;
	}
	if (!@r) {
		my $j = load($name);
		push @r, $j if $j;
	}
	return @r;
}

# Medians over fio runs, and the runs themselves.
sub fio_median {
	my @s = grep { defined } map { fio_summary($_) } @_;
	return undef unless @s;
	my %m = (runs => \@s);
	for my $k (qw(bw_bytes_per_s iops cpu_ms_per_gib)) {
		$m{$k} = median(map { $_->{$k} } @s);
	}
	for my $k (qw(p50 p99 p999 mean)) {
		$m{lat_us}{$k} = median(map { $_->{lat_us}{$k} } @s);
	}
	return \%m;
}

# Medians over kvswapctl bench runs; errors are summed.
sub kv_median {
	my @s = @_;
	return undef unless @s;
	my %m = (runs => \@s);
	for my $k (qw(throughput_bytes_per_s segments_per_s requests_per_s
		      daemon_cpu_ms_per_gib client_cpu_ms_per_gib)) {
		$m{$k} = median(map { $_->{$k} } @s);
	}
	for my $k (qw(p50 p99 p999 mean max)) {
		$m{latency_us}{$k} = median(map { $_->{latency_us}{$k} } @s);
		$m{request_latency_us}{$k} = median(map { $_->{request_latency_us}{$k} }
						    grep { $_->{request_latency_us} } @s);
	}
	$m{api} = $s[0]{api} // 'v1';
	$m{entries_per_request} = $s[0]{entries_per_request} // 1;
	$m{errors} = 0;
	$m{errors} += $_->{errors} // 0 for @s;
	$m{depth} = $s[0]{depth};
	return \%m;
}

# Cases, in the order run.sh ran them.
my (@cases, %seen);
for my $line (@commands) {
	next unless $line =~ m{--output=\S*/raw/fio-(in|out)-(\w+)-c(\d+)(?:-r\d+)?\.json};
	my ($op, $size, $c) = ($1, $2, $3);
	next if $seen{"$op-$size-c$c"}++;
	push @cases, { op => $op, size => $size, clients => $c };
}

my @rows;
for my $cs (@cases) {
	my $name = "$cs->{op}-$cs->{size}-c$cs->{clients}";
	my $fio = fio_median(reps("fio-$name"));
	my $seq = fio_median(reps("fioseq-$name"));
	my $psync = fio_median(reps("psync-$name"));
	my $kv = kv_median(reps("kv-$name"));
	push @rows, { %$cs, name => $name, fio => $fio, fioseq => $seq,
		      psync => $psync, kvswap => $kv };
	for my $extra (['noverify', 'daemon --verify off'],
		       ['durable', '--mode durable'], ['batch', 'batch API']) {
		my $kx = kv_median(reps("kv-$name-$extra->[0]")) or next;
		my $note = $extra->[1];
		$note .= ", $kx->{entries_per_request} entries per request"
			if $extra->[0] eq 'batch';
		push @rows, { %$cs, name => "$name-$extra->[0]", fio => $fio,
			      fioseq => $seq, psync => undef, kvswap => $kx,
			      note => $note, batch => $extra->[0] eq 'batch' };
	}
}

sub mbs { defined $_[0] ? sprintf('%.0f', $_[0] / 1e6) : '-' }

sub fmt_lat {
	my ($p50, $p99) = @_;
	return '-' unless defined $p50;
	return sprintf('%.0f / %.0f', $p50, $p99);
}

sub ratio {
	my ($row) = @_;
	my $f = $row->{fio} && $row->{fio}{bw_bytes_per_s};
	my $k = $row->{kvswap} && $row->{kvswap}{throughput_bytes_per_s};
	return undef unless $f && defined $k;
	return $k / $f;
}

my $small = 4096;

sub rate {
	my ($x, $iops) = @_;
	return '-' unless $x && defined($x->{bw_bytes_per_s} // $x->{throughput_bytes_per_s});
	return sprintf('%.1fk IOPS', ($x->{iops} // $x->{segments_per_s}) / 1e3) if $iops;
	return mbs($x->{bw_bytes_per_s} // $x->{throughput_bytes_per_s}) . ' MB/s';
}

sub num { defined $_[0] ? sprintf($_[1] // '%.0f', $_[0]) : '-' }

my @md;
push @md, '| case | fio | kvswap | kvswap / fio | fio p50 / p99 us | kvswap p50 / p99 us | fio CPU ms/GiB | daemon CPU ms/GiB | bench CPU ms/GiB | fio seq. write | psync buffered | errors |';
push @md, '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
for my $r (@rows) {
	my $iops = bytes_of($r->{size}) <= $small;
	my $k = $r->{kvswap};
	my $rt = ratio($r);
	$r->{ratio} = $rt;
	if ($r->{fioseq} && $k && $r->{fioseq}{bw_bytes_per_s}) {
		$r->{ratio_seq} = $k->{throughput_bytes_per_s} / $r->{fioseq}{bw_bytes_per_s};
	}
	my $label = sprintf('%s %s x%d', $r->{op}, $r->{size}, $r->{clients});
	$label .= " ($r->{note})" if $r->{note};
	push @md, sprintf('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
		$label, $r->{note} ? '(same)' : rate($r->{fio}, $iops),
		rate($k, $iops), num($rt, '%.2f'),
		$r->{fio} ? fmt_lat($r->{fio}{lat_us}{p50}, $r->{fio}{lat_us}{p99}) : '-',
		$k ? fmt_lat($k->{latency_us}{p50}, $k->{latency_us}{p99}) : '-',
		num($r->{fio} && $r->{fio}{cpu_ms_per_gib}),
		num($k && $k->{daemon_cpu_ms_per_gib}),
		num($k && $k->{client_cpu_ms_per_gib}),
		$r->{op} eq 'out' && !$r->{note} ? rate($r->{fioseq}, $iops) : '-',
		$r->{note} ? '-' : rate($r->{psync}, $iops),
		$k ? $k->{errors} : '-');
}

# A small swap-in beside a large swap-out.
my $fa = load('fair-alone');
my $fl = load('fair-loaded');
my $fo = load('fair-load');
my @fair;
if ($fa && $fl) {
	push @fair, '| 4K swap-ins, depth 1 | p50 us | p99 us | p99.9 us | IOPS |';
	push @fair, '| --- | ---: | ---: | ---: | ---: |';
	for my $x (['alone', $fa], ['beside 16M swap-outs (depth ' .
				     ($fo ? $fo->{depth} : '?') . ')', $fl]) {
		my $l = $x->[1]{latency_us};
		push @fair, sprintf('| %s | %.0f | %.0f | %.0f | %.0f |', $x->[0],
				    $l->{p50}, $l->{p99}, $l->{p999},
				    $x->[1]{segments_per_s});
	}
	push @fair, sprintf('| (the 16M swap-outs meanwhile: %s MB/s) | | | | |',
			    mbs($fo->{throughput_bytes_per_s})) if $fo;
}

# Prefill overlap.
my @prefill;
my @pf = grep { $_->[1] } map { [$_, load("prefill-$_")] }
	 qw(io balanced compute balanced-unpinned);
if (@pf) {
	push @prefill, '| layers x segment | compute / layer | kvswapd pinned | I/O alone | compute alone | TTFT load, then compute | TTFT overlap | overlap waited for data | TTFT overlap / max(I/O, compute) |';
	push @prefill, '| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |';
	for my $x (@pf) {
		my $p = $x->[1];
		push @prefill, sprintf('| %d x %s | %d us | %s | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f |',
			$p->{layers}, $p->{segment_size} >= 1 << 20 ?
			($p->{segment_size} >> 20) . ' MiB' :
			($p->{segment_size} >> 10) . ' KiB', $p->{compute_us},
			$x->[0] =~ /unpinned/ ? 'no' : 'yes',
			$p->{io_ms}, $p->{compute_ms}, $p->{ttft_serial_ms},
			$p->{ttft_overlap_ms}, $p->{stall_ms}, $p->{overlap_ratio});
	}
}

# The issue's targets, checked against this run.
my @targets;
for my $r (@rows) {
	next if $r->{note} || !defined $r->{ratio};
	my $bs = bytes_of($r->{size});
	my $want = $bs <= $small ? 0.90 : 0.95;
	push @targets, sprintf('- %s %s x%d: kvswap/fio %.2f (target %.2f): %s%s',
		$r->{op}, $r->{size}, $r->{clients}, $r->{ratio}, $want,
		$r->{ratio} >= $want ? 'met' : 'NOT met',
		defined $r->{ratio_seq} ? sprintf('; against fio sequential write %.2f',
						  $r->{ratio_seq}) : '');
}
for my $r (@rows) {
	next if $r->{note} || $r->{size} ne '1M' || !$r->{kvswap};
	my $c = $r->{kvswap}{daemon_cpu_ms_per_gib};
	push @targets, sprintf('- daemon CPU at 1M, %s x%d: %.1f ms/GiB (target <= 10): %s',
		$r->{op}, $r->{clients}, $c, $c <= 10 ? 'met' : 'NOT met');
}
for my $op (qw(in out)) {
	for my $size (map { $_->{size} } grep { $_->{clients} == 1 && $_->{op} eq $op && !$_->{note} } @rows) {
		my ($one) = grep { !$_->{note} && $_->{op} eq $op && $_->{size} eq $size && $_->{clients} == 1 } @rows;
		my ($many) = grep { !$_->{note} && $_->{op} eq $op && $_->{size} eq $size && $_->{clients} > 1 } @rows;
		next unless $one && $many && $one->{kvswap} && $many->{kvswap};
		my $a = $one->{kvswap}{throughput_bytes_per_s};
		my $b = $many->{kvswap}{throughput_bytes_per_s};
		next unless $a;
		push @targets, sprintf('- %s %s: %d clients / 1 client throughput %.2f (target >= 0.9): %s',
			$op, $size, $many->{clients}, $b / $a, $b / $a >= 0.9 ? 'met' : 'NOT met');
	}
}
for my $x (@pf) {
	my $p = $x->[1];
	next unless $p->{compute_us};
	push @targets, sprintf('- prefill %d x %d us%s: TTFT overlap / max(I/O, compute) %.2f (target <= 1.1): %s',
		$p->{layers}, $p->{compute_us},
		$x->[0] =~ /unpinned/ ? ' (not pinned)' : '', $p->{overlap_ratio},
		$p->{overlap_ratio} <= 1.1 ? 'met' : 'NOT met');
}

# The vLLM shape: one SwapInBatch of 250 x 32 x 64K against fio.
my $vfio = fio_median(reps('fio-vllm'));
my $vkv = kv_median(reps('kv-vllm'));
my $vratio = $vfio && $vkv && $vfio->{bw_bytes_per_s} ?
	$vkv->{throughput_bytes_per_s} / $vfio->{bw_bytes_per_s} : undef;
my ($vqd) = $machine =~ /^kvswapd queue depth: (\d+)/m;
my @vllm;
if ($vfio || $vkv) {
	push @vllm, '| vLLM-shaped swap-in | fio 64K randread | kvswap | kvswap / fio | group p50 / p99 ms | request p50 / p99 ms | fio CPU ms/GiB | daemon CPU ms/GiB | bench CPU ms/GiB | errors |';
	push @vllm, '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
	push @vllm, sprintf('| 250 blocks x 32 layers x 64 KiB, 1 request in flight; fio at depth %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |',
		$vqd // '?', rate($vfio), rate($vkv), num($vratio, '%.2f'),
		$vkv ? sprintf('%.1f / %.1f', $vkv->{latency_us}{p50} / 1e3, $vkv->{latency_us}{p99} / 1e3) : '-',
		$vkv && defined $vkv->{request_latency_us}{p50} ?
		sprintf('%.1f / %.1f', $vkv->{request_latency_us}{p50} / 1e3,
			$vkv->{request_latency_us}{p99} / 1e3) : '-',
		num($vfio && $vfio->{cpu_ms_per_gib}), num($vkv && $vkv->{daemon_cpu_ms_per_gib}),
		num($vkv && $vkv->{client_cpu_ms_per_gib}), $vkv ? $vkv->{errors} : '-');
}

# The vLLM shape's prefill overlap, through the batch API.
my @vpf = grep { $_->[2] } map { [$_->[0], $_->[1], load("prefill-$_->[0]")] }
	(['vllm-io', 'one batch, group = layer'],
	 ['vllm-balanced', 'one batch, group = layer'],
	 ['vllm-layers', 'a batch per layer, 4 in flight'],
	 ['vllm-layers-nocrc', 'a batch per layer, 4 in flight, no client CRC32C']);
my @vprefill;
if (@vpf) {
	push @vprefill, '| 250 blocks x 32 layers x 64 KiB | compute / layer | I/O alone | compute alone | TTFT load, then compute | TTFT overlap | overlap waited for data | TTFT overlap / max(I/O, compute) |';
	push @vprefill, '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
	for my $x (@vpf) {
		my $p = $x->[2];
		push @vprefill, sprintf('| %s | %d us | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f |',
			$x->[1], $p->{compute_us}, $p->{io_ms}, $p->{compute_ms},
			$p->{ttft_serial_ms}, $p->{ttft_overlap_ms}, $p->{stall_ms},
			$p->{overlap_ratio});
	}
}

# The trace replay, batch and v1.
my %tr;
for my $api (qw(batch v1 batch-big v1-big)) {
	my $t = load("trace-$api") or next;
	my ($s0, $s1) = (load("trace-$api-stat0"), load("trace-$api-stat1"));
	$t->{journal_commits} = $s0 && $s1 ? $s1->{journal_commits} - $s0->{journal_commits} : undef;
	$tr{$api} = $t;
}
my $trace_missing = slurp("$raw/trace-missing.txt");
my @trace;
my $tratio = $tr{batch} && $tr{v1} && $tr{v1}{blocks_per_s} ?
	$tr{batch}{blocks_per_s} / $tr{v1}{blocks_per_s} : undef;
my $tratio_big = $tr{'batch-big'} && $tr{'v1-big'} && $tr{'v1-big'}{blocks_per_s} ?
	$tr{'batch-big'}{blocks_per_s} / $tr{'v1-big'}{blocks_per_s} : undef;
if (%tr) {
	my $any = $tr{batch} // $tr{v1};
	push @trace, sprintf('Trace: %s, %d requests, %d block references (%d distinct), blocks of %d x %d KiB, %d client threads, capacity %d blocks (%.0f MiB), lease %d ms, swap-outs %s.',
		$any->{trace}, $any->{trace_requests}, $any->{trace_blocks},
		$any->{distinct_blocks}, $any->{layers}, $any->{segment_size} / 1024,
		$any->{clients}, $any->{capacity_blocks}, $any->{capacity_bytes} / 1048576,
		$any->{lease_ms}, $any->{swap_out_mode});
	push @trace, '';
	push @trace, '| replay | hit ratio | ideal LRU | of ideal | blocks/s (in + out) | MB/s | requests/s | lookup p50 / p99 us | swap-in p50 / p99 us | swap-out p50 / p99 us | mismatches | CRC errors | ENOENT | ENOSPC | skipped (IF_ABSENT) | evictions | journal commits | daemon CPU s |';
	push @trace, '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |';
	for my $api (qw(batch v1 batch-big v1-big)) {
		my $t = $tr{$api} or next;
		my $store = $api =~ /-big$/ ? sprintf(', %.0f MiB store: every block fits',
			$t->{capacity_bytes} / 1048576) : '';
		push @trace, sprintf('| %s | %.4f | %.4f | %.4f | %.0f (%.0f + %.0f) | %.0f | %.0f | %.0f / %.0f | %.0f / %.0f | %.0f / %.0f | %d | %d | %d | %d | %d | %d | %s | %.1f |',
			($api =~ /^batch/ ? 'batch API (Lookup, SwapInBatch, SwapOutBatch IF_ABSENT)' :
			 'v1 (Lookup, one SwapIn / SwapOut per block)') . $store,
			$t->{hit_ratio}, $t->{ideal_hit_ratio}, $t->{hit_ratio_of_ideal},
			$t->{blocks_per_s}, $t->{blocks_in_per_s}, $t->{blocks_out_per_s},
			$t->{bytes_per_s} / 1e6, $t->{requests_per_s},
			$t->{lookup_us}{p50}, $t->{lookup_us}{p99},
			$t->{swap_in_us}{p50}, $t->{swap_in_us}{p99},
			$t->{swap_out_us}{p50}, $t->{swap_out_us}{p99},
			$t->{mismatches}, $t->{crc_errors}, $t->{enoent}, $t->{enospc},
			$t->{skipped}, $t->{evictions}, $t->{journal_commits} // '-',
			$t->{daemon_cpu_ms} / 1e3);
	}
	push @trace, '', sprintf('Batch / v1 blocks per second: %s with eviction%s.',
		num($tratio, '%.2f'), defined $tratio_big ?
		sprintf(', %.2f on the store that holds every block', $tratio_big) : '')
		if defined $tratio;
} elsif ($trace_missing) {
	chomp $trace_missing;
	push @trace, "Trace replay SKIPPED: $trace_missing is missing (set BENCH_TRACE).";
}

# The targets of issue 9, checked against this run.
my @targets9;
sub verdict { $_[0] ? 'met' : 'NOT met' }
for my $size (qw(64K 4K)) {
	my $want = $size eq '4K' ? 0.8 : 0.95;
	for my $op (qw(in out)) {
		for my $r (grep { $_->{size} eq $size && $_->{op} eq $op && !$_->{note} } @rows) {
			my ($b) = grep { $_->{batch} && $_->{size} eq $size && $_->{op} eq $op &&
					 $_->{clients} == $r->{clients} } @rows;
			my $rb = $b ? $b->{ratio} : undef;
			next unless defined $rb || defined $r->{ratio};
			push @targets9, sprintf('- %s %s x%d: kvswap / fio %s with the batch API, %s with v1 requests (target >= %.2f): %s',
				$op, $size, $r->{clients}, num($rb, '%.2f'), num($r->{ratio}, '%.2f'),
				$want, defined $rb ? verdict($rb >= $want) : 'not measured');
		}
	}
}
push @targets9, sprintf('- vLLM-shaped swap-in: kvswap / fio %s (target >= 0.90): %s',
	num($vratio, '%.2f'), defined $vratio ? verdict($vratio >= 0.9) : 'not measured');
for my $x (@vpf) {
	next unless $x->[2]{compute_us} && $x->[0] ne 'vllm-io';
	push @targets9, sprintf('- vLLM-shaped prefill (%s): TTFT overlap / max(I/O, compute) %.2f (target <= 1.10): %s',
		$x->[1], $x->[2]{overlap_ratio}, verdict($x->[2]{overlap_ratio} <= 1.1));
}
if ($tr{batch} && $tr{v1}) {
	my ($tb, $tv) = ($tr{batch}, $tr{v1});
	push @targets9, sprintf('- trace replay: batch / v1 blocks per second %.2f (target >= 5): %s%s',
		$tratio, verdict($tratio >= 5), defined $tratio_big ?
		sprintf('; %.2f on a store that holds every block', $tratio_big) : '');
	push @targets9, sprintf('- trace replay: hit ratio %.4f against the ideal LRU\'s %.4f, %.2f%% off (target within 0.5%%): %s',
		$tb->{hit_ratio}, $tb->{ideal_hit_ratio}, 100 * abs(1 - $tb->{hit_ratio_of_ideal}),
		verdict(abs(1 - $tb->{hit_ratio_of_ideal}) <= 0.005));
	push @targets9, sprintf('- trace replay: %d mismatches and %d CRC errors (batch), %d and %d (v1) (target 0): %s',
		$tb->{mismatches}, $tb->{crc_errors}, $tv->{mismatches}, $tv->{crc_errors},
		verdict(!$tb->{mismatches} && !$tb->{crc_errors} && !$tv->{mismatches} && !$tv->{crc_errors}));
	push @targets9, sprintf('- trace replay: %d ENOSPC (batch), %d (v1) (target 0): %s',
		$tb->{enospc}, $tv->{enospc}, verdict(!$tb->{enospc} && !$tv->{enospc}));
} elsif (@trace) {
	push @targets9, '- trace replay: not measured (' . $trace[0] . ')';
}
for my $size (qw(1M 16M)) {
	for my $op (qw(in out)) {
		my ($b) = grep { $_->{batch} && $_->{size} eq $size && $_->{op} eq $op &&
				 $_->{clients} == 1 } @rows;
		next unless $b && $b->{kvswap} && $b->{fio};
		my ($d, $f) = ($b->{kvswap}{daemon_cpu_ms_per_gib}, $b->{fio}{cpu_ms_per_gib});
		next unless defined $d && $f;
		push @targets9, sprintf('- daemon CPU, %s %s x1, batch API (client CRC32C): %.1f ms/GiB, fio\'s own %.1f ms/GiB, %.2fx (target <= 1.25x): %s',
			$op, $size, $d, $f, $d / $f, verdict($d / $f <= 1.25));
	}
}

my $nreps = @rows && $rows[0]{kvswap} ? scalar(@{$rows[0]{kvswap}{runs}}) : 0;
# Run-to-run spread: max / min of the turns of each case.
my (@sp_fio, @sp_kv, @sp_kvb);
for my $r (@rows) {
	next if $r->{note} && !$r->{batch};
	for my $x ($r->{batch} ? () : ['fio', $r->{fio}, 'bw_bytes_per_s', \@sp_fio],
		   ['kv', $r->{kvswap}, 'throughput_bytes_per_s',
		    $r->{batch} ? \@sp_kvb : \@sp_kv]) {
		my ($tag, $m, $key, $list) = @$x;
		next unless $m && @{$m->{runs}} > 1;
		my @v = sort { $a <=> $b } grep { $_ } map { $_->{$key} } @{$m->{runs}};
		push @$list, [$v[-1] / $v[0], "$r->{op} $r->{size} x$r->{clients}"] if @v > 1;
	}
}
my @spread;
for my $x (['fio', \@sp_fio], ['kvswap', \@sp_kv], ['kvswap batch API', \@sp_kvb]) {
	my @s = sort { $a->[0] <=> $b->[0] } @{$x->[1]};
	next unless @s;
	push @spread, sprintf("%s: median %.2f, largest %.2f (%s)", $x->[0],
			      median(map { $_->[0] } @s), $s[-1][0], $s[-1][1]);
}
my $spread = join('; ', @spread);
my $crc = slurp("$raw/crc32c.txt") // '';
chomp $crc;

my $out = join("\n", @md) . "\n\n" .
	"Medians of $nreps turns of fio and kvswap per case. in: swap-in, daemon\n" .
	"defaults (durable, --verify on); out: swap-out with --mode cache. xC: C\n" .
	"clients, each keeping " . ($rows[0] && $rows[0]{kvswap} ? $rows[0]{kvswap}{depth} : '?') .
	" requests of one segment in flight; fio runs one job at\n" .
	"queue depth C x that. Latency: submission to completion (fio), to the\n" .
	"segment's event (kvswap). CPU: fio's own; kvswapd's from Stat; the bench\n" .
	"client's from getrusage.\n" .
	($spread ? "Run-to-run spread of throughput, max / min over the turns of a case:\n$spread.\n" : '') .
	($crc ? "CRC32C on this machine (bench/crc32c-speed): $crc\n" : '');
$out .= "\n" . join("\n", @fair) . "\n" if @fair;
$out .= "\n" . join("\n", @prefill) . "\n" if @prefill;
$out .= "\n" . join("\n", @vllm) . "\n" if @vllm;
$out .= "\n" . join("\n", @vprefill) . "\n" if @vprefill;
$out .= "\n" . join("\n", @trace) . "\n" if @trace;
$out .= "\nTargets (issue 9):\n" . join("\n", @targets9) . "\n" if @targets9;
$out .= "\nTargets (issue 5, v1 rows):\n" . join("\n", @targets) . "\n" if @targets;
print $out;
open(my $mdf, '>', "$dir/report.md") or die "report: $dir/report.md: $!\n";
print $mdf $out;
close($mdf);

my %results = (
	machine => $machine,
	commands => \@commands,
	cases => [ map { {
		case => $_->{name}, op => $_->{op}, segment_size => bytes_of($_->{size}),
		clients => $_->{clients}, note => $_->{note}, fio_io_uring => $_->{fio},
		fio_io_uring_seq_write => $_->{fioseq},
		fio_psync_buffered => $_->{psync}, kvswap => $_->{kvswap},
		ratio => $_->{ratio}, ratio_seq => $_->{ratio_seq},
	} } @rows ],
	fairness => { alone => $fa, loaded => $fl, load => $fo },
	prefill => { map { $_->[0] => $_->[1] } @pf },
	vllm => { fio => $vfio, kvswap => $vkv, ratio => $vratio, fio_depth => $vqd },
	vllm_prefill => { map { $_->[0] => $_->[2] } @vpf },
	trace => { %tr, ratio => $tratio, ratio_big => $tratio_big,
		   missing => $trace_missing },
	targets => \@targets,
	targets_issue9 => \@targets9,
	crc32c => $crc,
);
open(my $rf, '>', "$dir/results.json") or die "report: $dir/results.json: $!\n";
print $rf $json->encode(\%results);
close($rf);

# The plot: throughput and p99 latency against segment size.
my (%by, %sizes);
for my $r (@rows) {
	next if $r->{note};
	my $bs = bytes_of($r->{size});
	$sizes{$bs} = 1;
	$by{$bs}{"$r->{op}-$r->{clients}"} = $r;
}
my @clients = sort { $a <=> $b } keys %{{ map { $_->{clients} => 1 } @rows }};
my @cols;
for my $c (@clients) {
	for my $op (qw(in out)) {
		push @cols, [$op, $c];
	}
}
open(my $df, '>', "$dir/throughput.dat") or die "report: $dir/throughput.dat: $!\n";
print $df '# segment_size';
for my $col (@cols) {
	my ($op, $c) = @$col;
	print $df " fio_${op}_c$c kv_${op}_c$c fio_p99_${op}_c$c kv_p99_${op}_c$c";
}
print $df "\n";
for my $bs (sort { $a <=> $b } keys %sizes) {
	print $df $bs;
	for my $col (@cols) {
		my $r = $by{$bs}{"$col->[0]-$col->[1]"};
		my $f = $r && $r->{fio};
		my $k = $r && $r->{kvswap};
		printf $df ' %s %s %s %s',
			$f ? sprintf('%.1f', $f->{bw_bytes_per_s} / 1e6) : '?',
			$k ? sprintf('%.1f', $k->{throughput_bytes_per_s} / 1e6) : '?',
			$f ? sprintf('%.1f', $f->{lat_us}{p99}) : '?',
			$k ? sprintf('%.1f', $k->{latency_us}{p99}) : '?';
	}
	print $df "\n";
}
close($df);
my $plot = dirname($0) . '/plot.gp';
my @series = map { "swap-$_->[0]-x$_->[1]" } @cols;
system('gnuplot', '-e', "datafile='$dir/throughput.dat'; outfile='$dir/throughput.png'; ncols=" .
       scalar(@cols) . "; series='" . join(' ', @series) . "'", $plot) == 0
	or warn "report: gnuplot failed\n";
print STDERR "report: $dir/results.json, $dir/report.md, $dir/throughput.png\n";
