"""The process a job runs in, used by every layer: its device and dtypes, its CPU threads, the child
processes it starts, its log filters and its progress display.
"""
