"""ipywidgets panels: thin views over nbdebug's result objects; they never compute statistics."""
