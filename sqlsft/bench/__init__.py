"""The benchmarks (`sqlsft bench prepare|train|serve`): each returns its figures; the CLI draws them."""
