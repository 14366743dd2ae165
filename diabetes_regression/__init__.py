"""The model project: the diabetes Ridge regression. This is the part a template user replaces."""
