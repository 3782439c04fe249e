"""Temporal activities: every side effect of the workflows lives here."""
