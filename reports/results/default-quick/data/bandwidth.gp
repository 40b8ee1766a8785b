# 5. K/V bytes read per second against t, drawn by kvbench report. To redraw by hand:
#   cd DIR/data && gnuplot -e "set terminal pngcairo size 1500,960 font ',19'; set output '../bandwidth.png'; keyfont=',16'; labelfont=',14'" bandwidth.gp
set encoding utf8
set grid xtics ytics lc rgb '#dddddd' lt 1
set border lc rgb '#555555'
set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 font keyfont
set mxtics 10
set mytics 10
set format x '%g'
set offsets 0, 0, graph 0.06, graph 0.06
set arrow 1 from 16384, graph 0 to 16384, graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'
set label 1 'K/V = last-level cache' at 16384, graph 0.95 right offset -0.5,0 font labelfont
set yrange [0:47.0533]
set key outside right top
set title 'K/V bytes read per second against position t'
set logscale x 2
set format y '%g'
set xrange [12.3077:42598.4]
set xlabel 'position t (tokens already cached)'
set ylabel 'GB/s (10^9 bytes per second)'
plot 'bandwidth_cpu_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#d62728' title "cpu_cached (1 thread)", \
     'bandwidth_cpu_cached_t2.dat' using 1:2 with linespoints pt 5 lw 2 dt 4 lc rgb '#d62728' title "cpu_cached (2 threads)", \
     'bandwidth_naive_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#1f77b4' title "naive", \
     'bandwidth_paged_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#2ca02c' title "paged", \
     'bandwidth_prefix_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#ff7f0e' title "prefix_cached", \
     'bandwidth_torch_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#9467bd' title "torch_cached", \
     'bandwidth_torch_static_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#8c564b' title "torch_static", \
     24.645 with lines lw 2 dt 2 lc rgb '#000000' title "read-only 24.6 GB/s over 256 MiB", \
     20.696 with lines lw 2 dt 3 lc rgb '#666666' title "copy 20.7 GB/s (read+write)", \
     26.998 with lines lw 1.5 dt 4 lc rgb '#000000' title "read-only 27 GB/s over 64 MiB", \
     27.775 with lines lw 1.5 dt 4 lc rgb '#000000' title "read-only 27.8 GB/s over 32 MiB"
