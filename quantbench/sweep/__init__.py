"""Launching a sweep's jobs: each job reused (resume) or run, in-process or isolated in a child
process (a fresh interpreter or a fork of the warm worker); Ctrl-C; the end-of-sweep collection and report.
"""
