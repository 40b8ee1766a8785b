# 1. Generation time (the T decode steps) against T, drawn by kvbench report. To redraw by hand:
#   cd DIR/data && gnuplot -e "set terminal pngcairo size 1500,960 font ',19'; set output '../scaling.png'; keyfont=',16'; labelfont=',14'" scaling.gp
set encoding utf8
set grid xtics ytics lc rgb '#dddddd' lt 1
set border lc rgb '#555555'
set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 font keyfont
set mxtics 10
set mytics 10
set format x '%g'
set offsets 0, 0, graph 0.06, graph 0.06
set multiplot title 'Generation time against T (log-log)'
set size 1,0.64
set origin 0,0.34
set lmargin 12
set rmargin 4
set key inside right bottom
set logscale xy 2
set format y '%g'
set logscale y 10
set ylabel 'seconds per generation'
set xlabel ''
set xrange [12.3077:2662.4]
plot 'gen_naive.dat' using 1:2 with points pt 7 ps 1.1 lc rgb '#1f77b4' title "naive: b = 2.00, R² = 0.990", \
     'gen_naive.dat' using 1:3 with lines lw 2 lc rgb '#1f77b4' notitle, \
     'gen_cpu_cached.dat' using 1:2 with points pt 7 ps 1.1 lc rgb '#d62728' title "cpu_cached: b = 1.21, R² = 0.915", \
     'gen_cpu_cached.dat' using 1:3 with lines lw 2 lc rgb '#d62728' notitle, \
     'gen_paged.dat' using 1:2 with points pt 7 ps 1.1 lc rgb '#2ca02c' title "paged: b = 1.35, R² = 0.986", \
     'gen_paged.dat' using 1:3 with lines lw 2 lc rgb '#2ca02c' notitle, \
     'gen_prefix_cached.dat' using 1:2 with points pt 7 ps 1.1 lc rgb '#ff7f0e' title "prefix_cached: b = 1.43, R² = 0.991", \
     'gen_prefix_cached.dat' using 1:3 with lines lw 2 lc rgb '#ff7f0e' notitle, \
     'gen_torch_cached.dat' using 1:2 with points pt 7 ps 1.1 lc rgb '#9467bd' title "torch_cached: b = 1.37, R² = 0.982", \
     'gen_torch_cached.dat' using 1:3 with lines lw 2 lc rgb '#9467bd' notitle, \
     'gen_torch_static.dat' using 1:2 with points pt 7 ps 1.1 lc rgb '#8c564b' title "torch_static: b = 1.05, R² = 0.993", \
     'gen_torch_static.dat' using 1:3 with lines lw 2 lc rgb '#8c564b' notitle, \
     'guides.dat' using 1:2 with lines dt 2 lw 1.5 lc rgb '#888888' title "∝ T", \
     'guides.dat' using 1:3 with lines dt 3 lw 1.5 lc rgb '#888888' title "∝ T²"
set size 1,0.34
set origin 0,0
unset logscale y
set format y '%.1f'
set ylabel 'local exponent'
set xlabel 'T (tokens generated)'
set yrange [-0.739914:3.07063]
set ytics -5,0.5,10
set mytics 1
unset key
set label 2 'local exponent between neighbouring T (colours as above); grey: 1 and 2' at graph 0.01, graph 0.92 font labelfont noenhanced
set arrow 1 from 1024, graph 0 to 1024, graph 1 nohead dt 3 lw 1.5 lc rgb '#444444'
plot 'local_naive.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#1f77b4' title "naive", \
     'local_cpu_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#d62728' title "cpu_cached", \
     'local_paged.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#2ca02c' title "paged", \
     'local_prefix_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#ff7f0e' title "prefix_cached", \
     'local_torch_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#9467bd' title "torch_cached", \
     'local_torch_static.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#8c564b' title "torch_static", \
     1 with lines dt 2 lc rgb '#888888' title "T", \
     2 with lines dt 3 lc rgb '#888888' title "T²"
unset multiplot
