"""Keyhall's benchmarks: `make bench` measures the hot read path and the HTTP server choice.

Results go to bench/results/*.json and a human summary to docs/performance.md. Every load loop is bounded
in count and time and targets only 127.0.0.1.
"""
