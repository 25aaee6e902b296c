"""Encore's Spark code for Glue: pure DataFrame transforms (``transforms``) and the jobs' I/O (``io``)."""
