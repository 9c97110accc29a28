"""The Flower ServerApp of CardioMM-FL: rounds, checkpoints and resume, tracking, global
evaluation (``server.app:app``)."""
