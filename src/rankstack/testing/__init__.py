"""Conformance suites a new component runs against itself to prove it behaves like the built-in ones.

One module per component kind: ``sources``, ``rankers``, ``rerankers``, ``policies``, ``indexes``,
``state_stores``. Import the module you need (this package imports nothing); the library never imports
``rankstack.testing``. The check functions need numpy only; ``state_stores`` needs pytest and hypothesis.
"""
