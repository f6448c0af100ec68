# Throughput and p99 latency against segment size, fio against kvswap.
# Called by bench/report.pl with: datafile, outfile, ncols (series) and
# series (their names, separated by spaces).
set terminal pngcairo noenhanced size 1000,900 font ",10"
set output outfile
set multiplot layout 2,1
set logscale x 2
set xtics ("4K" 4096, "16K" 16384, "64K" 65536, "256K" 262144, \
	   "1M" 1048576, "4M" 4194304, "16M" 16777216)
set xlabel "segment size"
set grid
set key outside right top
label(i) = word(series, i)
set title "Throughput (MB/s): fio io_uring O_DIRECT (dashed) and kvswap (solid)"
set ylabel "MB/s"
plot for [i=1:ncols] datafile using 1:(column(4*i-2)) with linespoints \
	dt 2 lc i pt 6 title "fio ".label(i), \
     for [i=1:ncols] datafile using 1:(column(4*i-1)) with linespoints \
	dt 1 lc i pt 7 lw 2 title "kvswap ".label(i)
set title "p99 latency per segment (us): fio (dashed) and kvswap (solid)"
set ylabel "us"
set logscale y 10
plot for [i=1:ncols] datafile using 1:(column(4*i)) with linespoints \
	dt 2 lc i pt 6 title "fio ".label(i), \
     for [i=1:ncols] datafile using 1:(column(4*i+1)) with linespoints \
	dt 1 lc i pt 7 lw 2 title "kvswap ".label(i)
unset multiplot
