"""The command line: every `quantbench` command (run, list, cache, collect, recommend, resume, help)
and the checks on what a user typed. The top layer: nothing below imports from here.
"""
