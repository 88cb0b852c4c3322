"""The model in the browser: a static page where llama.cpp (wllama), SQLite (sql.js) and the training prompt
code (Pyodide) all run in WebAssembly, so nothing leaves the machine.

- `runtime`: the pinned npm packages, installed once into sqlsft's cache (the one `npm install`).
- `bundle`: the Python the page runs in Pyodide (sqlsft's own prompt code, sqlparse, jinja2), as one zip.
- `in_browser`: that Python's entry points (the prompt text, the SQL of an answer).
- `page`: writes the folder (templates/web/, the runtime files, the bundle, model.json, the GGUF).
- `export_web`: `sqlsft export --format web` for a run, a model folder, `embedded` or a .gguf file.
- `server`: the static server of `sqlsft chat --web` (COOP/COEP for threads, a strict CSP).
"""
