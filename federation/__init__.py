"""What the sites, the coordinator and the strategies share: the wire protocol (every message
key, error code and site record), the composition of a run's config from Flower's run config,
the typed round records of history.json, and the MLflow helpers. It imports the library
(cardiomm) and Flower, nothing above them."""
