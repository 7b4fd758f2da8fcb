"""Timing, memory and environment measurement, shared by every family and backend."""
