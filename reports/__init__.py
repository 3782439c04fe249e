"""Portfolio reports: counting rules (rules.py), the report and its builder (portfolio.py), exports (export.py)."""
