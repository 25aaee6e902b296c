"""The offline twin: Encore's AWS services emulated on one machine (moto, redis), driven by the real code."""
