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
set arrow 1 from 1024, graph 0 to 1024, graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'
set label 1 'K/V = last-level cache' at 1024, graph 0.95 right offset -0.5,0 font labelfont
set yrange [0:48.1133]
set key outside right top
set title 'K/V bytes read per second against position t'
set logscale x 2
set format y '%g'
set xrange [12.3077:10649.6]
set xlabel 'position t (tokens already cached)'
set ylabel 'GB/s (10^9 bytes per second)'
plot 'bandwidth_cpu_cached_t1.dat' using 1:2 with linespoints pt 7 lw 2 dt 1 lc rgb '#1f77b4' title "cpu_cached (1 thread)", \
     'bandwidth_cpu_cached_t2.dat' using 1:2 with linespoints pt 5 lw 2 dt 4 lc rgb '#1f77b4' title "cpu_cached (2 threads)", \
     41.838 with lines lw 2 dt 2 lc rgb '#000000' title "read-only 41.8 GB/s over 256 MiB", \
     35.506 with lines lw 2 dt 3 lc rgb '#666666' title "copy 35.5 GB/s (read+write)", \
     32.110 with lines lw 1.5 dt 4 lc rgb '#000000' title "read-only 32.1 GB/s over 256 MiB"
