"""Encore's shared domain library: contracts, configuration, scoring and AWS access, used by every runtime."""

__version__ = "0.1.0"
