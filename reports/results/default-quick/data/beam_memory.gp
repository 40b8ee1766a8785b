# 6. Beam-search memory against the beam width, drawn by kvbench report. To redraw by hand:
#   cd DIR/data && gnuplot -e "set terminal pngcairo size 1500,960 font ',19'; set output '../beam_memory.png'; keyfont=',16'; labelfont=',14'" beam_memory.gp
set encoding utf8
set grid xtics ytics lc rgb '#dddddd' lt 1
set border lc rgb '#555555'
set key inside left top box opaque noenhanced spacing 1.05 samplen 2.5 width 1 font keyfont
set mxtics 10
set mytics 10
set format x '%g'
set offsets 0, 0, graph 0.06, graph 0.06
set title 'Peak bytes held in beam search (log y)'
set logscale y 2
set ytics ("1 MiB" 1048576, "4 MiB" 4194304, "16 MiB" 16777216, "64 MiB" 67108864, "256 MiB" 268435456, "1 GiB" 1073741824, "4 GiB" 4294967296)
set mytics 2
set xrange [2:10]
set xtics 2
set mxtics 1
set xlabel 'beam width W'
set ylabel 'bytes held (peak)'
plot 'beam_cpu_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#d62728' title "cpu_cached held", \
     'beam_cpu_cached.dat' using 1:3 with linespoints pt 6 dt 2 lc rgb '#d62728' title "cpu_cached reserved", \
     'beam_paged.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#2ca02c' title "paged held", \
     'beam_prefix_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#ff7f0e' title "prefix_cached held", \
     'beam_torch_cached.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#9467bd' title "torch_cached held", \
     'beam_torch_static.dat' using 1:2 with linespoints pt 7 lw 2 lc rgb '#8c564b' title "torch_static held"
