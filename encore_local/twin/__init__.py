"""The offline twin: Encore's AWS services emulated on one machine (moto, redis), driven by the real code."""

from encore_local.twin.services import TwinEndpoints, TwinServices

__all__ = ["TwinEndpoints", "TwinServices"]
