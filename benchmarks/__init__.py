"""sgs-ext benchmarks (not installed; run from the source tree, see benchmarks/README.md)."""
