"""The demo generator's named steps (issue 10).

``python_analysis.demo_data.generate_demo`` calls the steps in ``steps`` in order; each plants one part of
the demo's truth. The public names (``generate_demo``, ``DemoData``, ``write_scaled_parquet``, the constants)
stay in ``python_analysis.demo_data``.
"""
