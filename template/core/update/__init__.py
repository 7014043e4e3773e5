"""Keeping the fork in step with the template: `./run update`, `./run drift`, `./run check` and `./run upstream`.
Template-owned."""
