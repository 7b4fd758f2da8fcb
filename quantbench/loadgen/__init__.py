"""The load generator behind `scenario=serve` (quantbench.scenarios.serve drives it): the server
process and its capability probe, the streaming client and its SSE parser, load levels (closed loop
and Poisson arrivals), the per-request records and the statistics computed from them."""
