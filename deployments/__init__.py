"""How the flows run unattended: ``prefect.yaml`` read back, and ``cryptoflow serve``."""
