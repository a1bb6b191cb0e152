"""Running an evaluation: build the objects from the config, predict, score, store, log."""
