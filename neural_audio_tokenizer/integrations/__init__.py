"""Adapters to other systems (Ray Data). Each imports its system lazily: optional extras."""
