"""Importing an existing project list (.xlsx or CSV): parse, validate, preview, then apply through the workflows.

`columns` says what a file holds, `parse` reads it row by row, `validate` turns each row into
either the values of one cooperation (with its signed framework and investment agreements and
one project) or row-level errors, and `apply` sends a confirmed row through the normal actions.
"""
