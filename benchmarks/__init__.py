"""Benchmarks: each module has a ``main(argv)`` that prints its figures; ``python -m benchmarks`` runs all."""
