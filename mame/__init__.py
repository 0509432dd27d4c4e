"""MAMe transfer-learning study: experiment engine, data layer and report generator."""

__version__ = "0.1.0"
