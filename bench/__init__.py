"""The benchmark harness behind `make bench`: a fixed-answer nginx mock upstream, the gateway
and its comparison points under wrk load, with CPU, memory and ledger checks.
See docs/performance.md."""
