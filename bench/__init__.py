"""`python -m bench`: balance reads and ledger write throughput; see docs/PERFORMANCE.md."""
