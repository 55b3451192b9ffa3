"""Training the zoo: runtime set-up, the resumable loop, slots, worker processes, Prefect tasks.

Modules: ``runtime`` (TensorFlow environment and import), ``arrays`` (what a training reads),
``checkpoints`` (keep, save, resume), ``loop`` (``train_model``), ``sweep`` (the regularization
sweep), ``slots`` (devices and cores), ``worker`` (the worker-process protocol; the process
itself is ``python -m tasks.training``), ``task`` (the Prefect tasks and run bookkeeping).
Importing this package is cheap: it loads neither TensorFlow nor Prefect.
"""
