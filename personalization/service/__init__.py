"""The service layer: every operation people perform on the line — batches and their runs,
the line's machines, key ceremonies, QA, preparation, the demo, benchmarks — as functions and
small classes that take the configuration and return typed results.

A service never prints, prompts or exits: it raises an error under
:class:`common.errors.CardlineError` whose message says what went wrong and what to do. The
front ends (the CLI today, the dashboard next) parse, call a service, and render the result;
nothing below this layer imports it.
"""
