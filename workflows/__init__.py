"""Temporal workflows: one CooperationWorkflow per cooperation, one child ProjectWorkflow per project."""
