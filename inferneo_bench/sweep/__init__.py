"""The sweep: each strategy's capacity under an SLO (the highest offered rate it sustains with SLO attainment
at least the target) and its latency-against-load curve, from normal result files, one per point.

- rescale.py: a point's workload (arrivals rescaled to the offered rate; all at once for the saturation point);
- search.py: capacity definition and the search (saturation, coarse spread, bisection);
- points.py: what a sweep keeps of each saved point;
- runner.py: runs the points through the normal run path;
- report.py / plots.py: the report, built from the saved points only.
"""
