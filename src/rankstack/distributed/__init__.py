"""Scale-out on Ray: the one package that imports ``ray``.

``backend`` (no Ray import) says where a command runs (``--backend local|ray``, ``--workers``, ``--address``);
``cluster`` starts or joins a Ray instance; ``evaluation`` shards full-ranking evaluation by user across workers
with metrics identical to the single-process evaluator; ``inference`` embeds and recommends sharded by user and
builds a vector index from the gathered embeddings; ``preprocess`` reads, validates and writes an event log with
Ray Data, byte for byte as the single-machine path does.
"""
