"""The line's journal: what happened to every application, card and blank, durably."""
