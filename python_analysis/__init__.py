"""segfit's Python layer: reads the dbt marts, fits models, writes the report."""

__version__ = "0.1.0"
