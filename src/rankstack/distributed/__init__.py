"""Scale-out on Ray: the one package that imports ``ray``.

``backend`` (no Ray import) says where a command runs (``--backend local|ray``, ``--workers``, ``--address``);
``cluster`` starts or joins a Ray instance; ``evaluation`` shards full-ranking evaluation by user across workers
with metrics identical to the single-process evaluator; ``inference`` embeds and recommends sharded by user and
builds a vector index from the gathered embeddings; ``preprocess`` validates an event log, fits its id maps and writes
its shards on workers, byte for byte as the single-machine ``rankstack.data.prepare`` does; ``search`` runs
``rankstack tune`` on Ray Tune; ``boosting`` trains the LambdaRank ranker on Ray Train's LightGBM trainer; ``tasks``
runs a function over shards, a bounded number at a time.
"""
