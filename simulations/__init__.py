"""Consortium simulation: site partitioning of a multi-centre data set, held-out-centre studies."""
