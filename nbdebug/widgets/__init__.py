"""ipywidgets panels: thin views over nbdebug's result objects. They never compute statistics."""
