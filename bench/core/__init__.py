"""The core every stage and family may import: the registry, parameters, scores, errors, the
Evaluator API, checkpoints, plots and plugins. It imports nothing else of ganbench."""
