"""Tests of the comfyone_sdk package against a real loopback server."""
