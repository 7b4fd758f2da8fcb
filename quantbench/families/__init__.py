"""Model families: how inputs are built, how generation runs and how tokens are counted."""
