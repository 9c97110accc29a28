"""CardioMM."""
