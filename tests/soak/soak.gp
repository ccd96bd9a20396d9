# Chart of a soak run: gnuplot -e "csv='soak.csv'; png='soak.png'" soak.gp
set datafile separator ','
set terminal pngcairo size 1200,900 font ',10'
set output png
set multiplot layout 3,1 title 'switchyard soak'
set key top left
set grid
set xlabel 'seconds'
set autoscale xfix
set offsets 0, 0, graph 0.3, 0  # room above the curves for the key

set ylabel 'MB'
set yrange [0:*]
plot csv using 1:($2/1024) skip 1 with lines lw 2 title 'RSS', \
     csv using 1:($3/1048576) skip 1 with lines lw 2 title 'message pools'

set ylabel 'messages'
plot csv using 1:5 skip 1 with lines lw 2 title 'in flight', \
     csv using 1:10 skip 1 with lines lw 2 title 'dead letters held'

# Rates from consecutive samples of the cumulative counts.
t0 = 0; a0 = 0; e0 = 0; t1 = 0
rate(t, v, v0) = (t > 0.5 ? (v - v0) / t : 1/0)  # the row after stop: no rate
set ylabel 'messages / s'
plot csv using 1:(dt = $1 - t0, t0 = $1, r = rate(dt, $6, a0), a0 = $6, r) skip 1 \
        with lines lw 2 title 'accepted', \
     csv using 1:(dt = $1 - t1, t1 = $1, r = rate(dt, $9, e0), e0 = $9, r) skip 1 \
        with lines lw 2 title 'evicted from the DLQ'
unset multiplot
