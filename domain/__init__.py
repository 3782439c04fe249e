"""Pure domain rules of Accord: data shapes, state machines, templates.

Nothing here does I/O or reads a clock; workflows, activities and the API all
use these modules, and unit tests cover them without any server.
"""
