"""Benchmarks: complexity (profile), throughput (speed), training sweeps (sweep), the README table and plots."""
