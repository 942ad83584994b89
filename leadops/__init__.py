"""leadops: lead-nurture automation on a schedule."""

__version__ = "0.1.0"
