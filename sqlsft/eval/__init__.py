"""The eval stage (`sqlsft eval`). Start at evaluate.py, which names the module of each step."""
