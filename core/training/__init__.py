"""One trial (K folds over cached activations or images), the activation cache, and the sweep's
data and cache plan. Knows nothing of Optuna: the search wing drives it."""
