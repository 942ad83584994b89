"""Prefect flows: thin orchestration over leadops functions, one file per schedule."""
