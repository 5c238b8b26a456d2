"""One pipeline, offline and online: config, training, artifacts, and the recommend code path."""
