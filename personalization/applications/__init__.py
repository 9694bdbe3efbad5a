"""Application intake: the registry's JSON Lines, validated field by field."""
