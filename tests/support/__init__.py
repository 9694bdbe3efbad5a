"""Helpers shared by the tests of several packages.

The throwaway SoftHSM token is not here: the benchmark needs it too, so it is
``hsm.softhsm.throwaway_token``.
"""
