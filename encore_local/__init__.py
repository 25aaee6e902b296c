"""Encore on one machine: the offline twin, the listening simulator and the `encore` command line."""
