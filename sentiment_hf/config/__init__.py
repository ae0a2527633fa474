"""Configuration: the recipe, its schema and the sweep section."""
