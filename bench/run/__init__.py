"""Running a matrix: trial keys, trial kinds, executors, the runner, the store, the layout of
``runs/``. It imports the core and the families (datasets, architectures, metrics,
explainers), never the board."""
