"""``cardiomm`` sub-commands provided by the simulations package (entry-point group
``cardiomm.commands``, so that cardiomm itself never imports simulations)."""
