# 4. Bytes held against T, drawn by kvbench report. To redraw by hand:
#   cd DIR/data && gnuplot -e "set terminal pngcairo size 1500,960 font ',19'; set output '../memory.png'; keyfont=',16'; labelfont=',14'" memory.gp
set encoding utf8
set grid xtics ytics lc rgb '#dddddd' lt 1
set border lc rgb '#555555'
set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 font keyfont
set mxtics 10
set mytics 10
set format x '%g'
set offsets 0, 0, graph 0.06, graph 0.06
set title 'Bytes held against T (log-log)'
set logscale x 2
set logscale y 2
set ytics ("16 KiB" 16384, "64 KiB" 65536, "256 KiB" 262144, "1 MiB" 1048576, "4 MiB" 4194304, "16 MiB" 16777216)
set mytics 2
set xrange [12.3077:2662.4]
set xlabel 'T (tokens held)'
set ylabel 'bytes held'
plot 'memory_naive.dat' using 1:2 with points pt 7 ps 2.0 lc rgb '#1f77b4' title "naive", \
     'memory_cpu_cached.dat' using 1:2 with points pt 5 ps 1.6 lc rgb '#d62728' title "cpu_cached", \
     'memory_paged.dat' using 1:2 with points pt 9 ps 1.2 lc rgb '#2ca02c' title "paged", \
     'memory_prefix_cached.dat' using 1:2 with points pt 13 ps 0.8 lc rgb '#ff7f0e' title "prefix_cached", \
     'memory_torch_cached.dat' using 1:2 with points pt 11 ps 0.6 lc rgb '#9467bd' title "torch_cached", \
     'memory_torch_static.dat' using 1:2 with points pt 15 ps 0.6 lc rgb '#8c564b' title "torch_static", \
     'memory_formula.dat' using 1:2 with lines lw 2 lc rgb '#000000' title "2 L H_kv d T × 4 B"
