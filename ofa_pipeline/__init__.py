"""The pipeline on top of the three layers, as a library with console commands on top.

Layers, each importing only from those below it (checked by import-linter in the tests)::

    ofa_pipeline        the pipeline's stages as functions, and the console commands
    predictors          latency and accuracy predictors (scikit-learn estimators)
    hardware_profiles   device backends, measurement protocol, profile datasets
    ofa                 spaces, supernets, models, data, training, evaluation, export, search

The library modules, one per stage (``docs/python-api.md`` runs them end to end):

* :mod:`ofa_pipeline.evaluate` - evaluate subnets through the model family (``evaluate_subnets``);
* :mod:`ofa_pipeline.block_fitting`, :mod:`ofa_pipeline.table_fitting` - fit and score block-sum,
  transfer and feature-table latency predictors (``fit_block_or_transfer``, ``fit_table``);
* :mod:`ofa_pipeline.specialize` - search, verify, export and report per latency budget
  (``specialize`` with a ``SpecializeConfig``), with :mod:`ofa_pipeline.closed_loop`;
* :mod:`ofa_pipeline.deploy` - export one subnet (``deploy_subnet``);
* :mod:`ofa_pipeline.shipped` - predictors fitted on the shipped profiles;
* :mod:`ofa_pipeline.exits` - specialisation with early exits.

:mod:`ofa_pipeline.commands` holds the console commands (``ofa-<name>``): each parses its
arguments, calls the library and prints; no library module imports a command.
"""
