"""Generated from protos/ by protos/compile.py; do not edit."""
