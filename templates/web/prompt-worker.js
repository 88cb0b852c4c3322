// The training prompt code, in Python (Pyodide), off the page's main thread.
// It unpacks python.zip (sqlsft's own prompt and SQL-reading modules, sqlparse, jinja2) and answers
// {id, request} messages with {id, response}: both JSON texts of sqlsft.export.web.in_browser.dispatch.
import { loadPyodide } from './runtime/pyodide/pyodide.mjs';

const BUNDLE_DIR = '/home/pyodide/sqlsft-bundle';
let dispatch = null;

async function start(prompts) {
  const started = performance.now();
  const pyodide = await loadPyodide({
    indexURL: new URL('./runtime/pyodide/', self.location.href).href,
    stdout: () => {},
    stderr: (line) => console.warn('[python]', line),
  });
  const bundle = await fetch(new URL('./python.zip', self.location.href));
  if (!bundle.ok) throw new Error(`python.zip: HTTP ${bundle.status}`);
  pyodide.unpackArchive(await bundle.arrayBuffer(), 'zip', { extractDir: BUNDLE_DIR });
  pyodide.runPython(`import sys\nsys.path.insert(0, ${JSON.stringify(BUNDLE_DIR)})`);
  dispatch = pyodide.pyimport('sqlsft.export.web.in_browser').dispatch;
  const init = JSON.parse(dispatch(JSON.stringify({ op: 'init', prompts })));
  if (!init.ok) throw new Error(init.error || 'the prompt code did not start');
  return { seconds: (performance.now() - started) / 1000, python: pyodide.version };
}

self.onmessage = async (event) => {
  const { id, request } = event.data;
  try {
    if (request.op === 'start') {
      self.postMessage({ id, response: await start(request.prompts) });
    } else {
      self.postMessage({ id, response: JSON.parse(dispatch(JSON.stringify(request))) });
    }
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message ? error.message : error) });
  }
};
