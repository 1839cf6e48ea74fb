"""Test helpers shared by the SDK and scheduler suites (no Django imports here)."""
