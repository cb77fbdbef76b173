"""The pipeline on top of the three layers: specialise, deploy, report, quickstart, and the commands.

Layers, each importing only from those below it (checked by import-linter in the tests)::

    ofa_pipeline        specialise / deploy / report / quickstart, console commands
    predictors          latency and accuracy predictors (scikit-learn estimators)
    hardware_profiles   device backends, measurement protocol, profile datasets
    ofa                 spaces, supernets, models, data, training, evaluation, export, search
"""
