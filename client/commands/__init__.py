"""``cardiomm`` sub-commands a site runs (registered in pyproject.toml)."""
