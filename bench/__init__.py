"""The performance benchmark (`make bench`, bench/run.py); see bench/README.md."""
