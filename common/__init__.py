"""The foundation every package may import: the error root and shared tables.

Pure: it imports nothing else of cardline's and does no I/O.
"""
