"""Helpers shared by the tests of several packages: software signers, test cards, tokens."""
