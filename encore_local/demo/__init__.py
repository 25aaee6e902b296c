"""``encore demo``: the run (``run``), its live hour (``live``) and its reports (``report``, ``html_report``)."""
