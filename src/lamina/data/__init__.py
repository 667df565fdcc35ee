"""Data: adapters from user data to batches, and (with the datasets extra) time-series sets."""
