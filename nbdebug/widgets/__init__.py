"""ipywidgets panels: thin views over the result objects; they never compute statistics themselves."""
