"""Test support shared by the integration and reliability suites (no tests here)."""
