# 3. Speedup of the cache over no cache, against T, drawn by kvbench report. To redraw by hand:
#   cd DIR/data && gnuplot -e "set terminal pngcairo size 1500,960 font ',19'; set output '../speedup.png'; keyfont=',16'; labelfont=',14'" speedup.gp
set encoding utf8
set grid xtics ytics lc rgb '#dddddd' lt 1
set border lc rgb '#555555'
set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 font keyfont
set mxtics 10
set mytics 10
set format x '%g'
set offsets 0, 0, graph 0.06, graph 0.06
set title 'Speedup naive / cached against T'
set logscale x 2
set logscale y 10
set format y '%g'
set xrange [12.3077:332.8]
set xlabel 'T (tokens generated)'
set ylabel 'time ratio (x)'
plot 'speedup_cpu_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#d62728' title "naive / cpu_cached measured", \
     'speedup_cpu_cached.dat' using 1:3 with lines dt 2 lw 2 lc rgb '#000000' title "naive / cache, analytic (op counts)", \
     'speedup_paged.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#2ca02c' title "naive / paged measured", \
     'speedup_prefix_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#ff7f0e' title "naive / prefix_cached measured", \
     'speedup_torch_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#9467bd' title "naive / torch_cached measured", \
     'speedup_torch_static.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#8c564b' title "naive / torch_static measured"
