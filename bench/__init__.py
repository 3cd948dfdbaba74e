"""Benchmarks: each module compares phiguard against an anchor in the same run."""
