"""The Flower ClientApp: a site's node trains CardioMM on its own k-space and returns only
weights and metrics (see docs/federation-protocol.md)."""
