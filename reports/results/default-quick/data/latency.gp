# 2. Per-token latency against position t, drawn by kvbench report. To redraw by hand:
#   cd DIR/data && gnuplot -e "set terminal pngcairo size 1500,960 font ',19'; set output '../latency.png'; keyfont=',16'; labelfont=',14'" latency.gp
set encoding utf8
set grid xtics ytics lc rgb '#dddddd' lt 1
set border lc rgb '#555555'
set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 font keyfont
set mxtics 10
set mytics 10
set format x '%g'
set offsets 0, 0, graph 0.06, graph 0.06
set arrow 1 from 511, graph 0 to 511, graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'
set label 1 'projections = attention (model)' at 511, graph 0.04 left offset 0.5,0 font labelfont
set title 'Decode-step latency against position t (log-log)'
set logscale x 2
set logscale y 10
set format y '%g'
set xrange [12.3077:42598.4]
set xlabel 'position t (tokens already cached)'
set ylabel 'microseconds per decode step'
plot 'decode_naive_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#1f77b4' title "naive", \
     'decode_naive_t1.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#1f77b4' notitle, \
     'decode_cpu_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#d62728' title "cpu_cached (1 thread)", \
     'decode_cpu_cached_t1.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#d62728' notitle, \
     'decode_cpu_cached_t2.dat' using 1:2 with linespoints pt 5 lw 2 dt 4 lc rgb '#d62728' title "cpu_cached (2 threads)", \
     'decode_cpu_cached_t2.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#d62728' notitle, \
     'decode_paged_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#2ca02c' title "paged", \
     'decode_paged_t1.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#2ca02c' notitle, \
     'decode_prefix_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#ff7f0e' title "prefix_cached", \
     'decode_prefix_cached_t1.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#ff7f0e' notitle, \
     'decode_torch_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#9467bd' title "torch_cached", \
     'decode_torch_cached_t1.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#9467bd' notitle, \
     'decode_torch_static_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#8c564b' title "torch_static", \
     'decode_torch_static_t1.dat' using 1:3 with lines dt 2 lw 1 lc rgb '#8c564b' notitle, \
     'floor_t1.dat' using 1:2 with lines dt 3 lw 2 lc rgb '#333333' title "floor (1 thread)", \
     'floor_t2.dat' using 1:2 with lines dt 3 lw 2 lc rgb '#888888' title "floor (2 threads)"
