"""Imported by the kill test's fork server: one training run warms lamina and torch up (lazy
imports, first calls), so that every worker forked from the server starts training at once."""

from tests.saving import crash_worker

crash_worker.train()
