"""Tests of the benchmarks: their plain parts (fits, tables), and a bench end to end on tiny sets."""
