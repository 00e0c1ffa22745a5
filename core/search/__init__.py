"""The search: the oracle (sampler, pruner, grid accounting), the worker that runs trials, the
final refit, and the one owner of a sweep's life (start, resume, stop, executors)."""
