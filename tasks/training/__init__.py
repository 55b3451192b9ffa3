"""Training the zoo: runtime set-up, the resumable loop, slots, worker processes, Prefect tasks.

Modules: ``backends`` (one runtime module per Keras backend: TensorFlow, JAX, PyTorch),
``runtime`` (a training process's environment and import, routed to its backend),
``arrays`` (what a training reads),
``checkpoints`` (keep, save, resume), ``loop`` (``train_model``), ``sweep`` (the regularization
sweep), ``slots`` (devices and cores), ``worker`` (the worker-process protocol; the process
itself is ``python -m tasks.training``), ``task`` (the Prefect tasks and run bookkeeping).
Importing this package is cheap: it loads no backend and no Prefect (``loop``, ``worker``
and ``slots`` never do: the offline GPU host has neither TensorFlow nor Prefect).
"""
