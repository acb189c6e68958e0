"""Session Contracts benchmarks: a command (`python -m bench`), not timed tests. See bench/run.py and docs/benchmarks.md."""
