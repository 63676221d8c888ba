"""Similarity at scale: many-target scoring of stored features and localization of matching segments."""
