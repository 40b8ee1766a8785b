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
unset key
unset border
unset tics
unset grid
set xrange [0:1]
set yrange [0:1]
set label 1 "no generation benchmarks in this bench output" at 0.5,0.5 center noenhanced
plot 2 notitle
