"""The held-out-centre (zero-shot) study: plan, run, evaluate and report (``cardiomm simulate``)."""
