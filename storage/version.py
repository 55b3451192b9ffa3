"""The code version recorded in window files, dataset ids and cache keys.

Bump ``DATA_FORMAT_VERSION`` when the bytes a stage writes for the same inputs change.
"""

DATA_FORMAT_VERSION = "1"
