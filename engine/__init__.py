"""Kefu's workflow engine host: SpiffWorkflow behind a handful of verbs.

Deploy definitions, start instances, complete human tasks, fire due timers; persist each step
(state, inbox rows, timers, audit) in the caller's transaction. Knows nothing of Flask or HTTP.
"""
