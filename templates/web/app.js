// The page: loads the model (wllama), the prompt code (Pyodide worker) and SQLite (sql.js worker), then
// asks the model with the exact training prompt and runs the SQL of its answer on the schema.
// Everything untrusted (answers, results, examples, errors) reaches the DOM as textContent only.
import { Wllama } from './runtime/wllama/index.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const page = { state: 'loading', timings: {}, last: null, error: null }; // read by tests and `bench web`
window.sqlsftPage = page;

function setState(state) {
  page.state = state;
  document.body.dataset.state = state;
}

function fail(message) {
  page.error = message;
  $('load-status').textContent = message;
  $('load-status').classList.add('bad');
  setState('error');
}

function showMessage(text) {
  $('message').textContent = text;
  $('message').hidden = !text;
}

// ------------------------------------------------------------------ the prompt worker (Python)

const promptWorker = new Worker('prompt-worker.js', { type: 'module' });
const pending = new Map();
let nextId = 1;
promptWorker.onmessage = (event) => {
  const { id, response, error } = event.data;
  const waiter = pending.get(id);
  pending.delete(id);
  if (waiter) error ? waiter.reject(new Error(error)) : waiter.resolve(response);
};
function python(request) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    promptWorker.postMessage({ id, request });
  });
}
page.python = python; // the byte-identity test calls the page's own prompt code

// ------------------------------------------------------------------ the SQL worker (SQLite), with a time limit

let sqlWorker = null;
function freshSqlWorker() {
  if (sqlWorker) sqlWorker.terminate();
  sqlWorker = new Worker('sql-worker.js');
  return sqlWorker;
}
freshSqlWorker();

function runSql(schemaStatements, statement, limitMs) {
  const worker = sqlWorker;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      freshSqlWorker(); // the only way to stop SQLite mid-statement: end its thread
      resolve({ status: 'timeout', error: `the query ran longer than ${limitMs / 1000} s and was stopped.` });
    }, limitMs);
    worker.onmessage = (event) => {
      clearTimeout(timer);
      resolve(event.data.result);
    };
    worker.postMessage({ id: 1, job: { schema: schemaStatements, statement, maxRows: page.config.max_rows } });
  });
}

// ------------------------------------------------------------------ rendering (text only)

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function cellText(value) {
  if (value === null) return null;
  if (typeof value === 'object' && value.bytes !== undefined) return `${value.bytes} bytes`;
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Number(value.toPrecision(6)));
  return String(value);
}

function renderResult(target, result) {
  target.replaceChildren();
  if (!result) return;
  if (result.status !== 'ok') {
    const label = { timeout: 'Stopped', refused: 'Refused', schema_error: 'Schema error' }[result.status] || 'SQLite error';
    const line = element('div', '', 'bad');
    line.append(element('b', `${label}: `), document.createTextNode(result.error || result.status));
    target.append(line);
    return;
  }
  if (!result.columns.length) {
    target.append(element('div', 'The statement ran; it returns no rows.', 'meta'));
    return;
  }
  const shown = result.rows.slice(0, page.config.shown_rows);
  const count = `${result.rows.length}${result.truncated ? '+' : ''} row${result.rows.length === 1 ? '' : 's'}`;
  const more = result.rows.length > shown.length ? ` · showing ${shown.length}` : '';
  target.append(element('div', `${count} · ${Math.round(result.ms)} ms${more}`, 'meta'));
  const table = element('table', undefined, 'result');
  const head = table.createTHead().insertRow();
  for (const column of result.columns) head.append(element('th', column));
  const body = table.createTBody();
  for (const row of shown) {
    const tr = body.insertRow();
    for (const value of row) {
      const text = cellText(value);
      tr.append(text === null ? element('td', 'NULL', 'null') : element('td', text));
    }
  }
  const scroll = element('div', undefined, 'scroll');
  scroll.append(table);
  target.append(scroll);
}

// ------------------------------------------------------------------ comparing with the expected query

function rowKey(row) {
  return JSON.stringify(row.map((v) => (typeof v === 'number' ? Number(v.toPrecision(12)) : v)));
}

function verdict(expected, predicted, ordered) {
  if (!expected || expected.status !== 'ok') return ['unknown', '? The expected query does not run'];
  if (!predicted) return ['mismatch', '✗ Mismatch: no SQL in the answer'];
  if (predicted.status !== 'ok') return ['mismatch', '✗ Mismatch: the answer does not run'];
  if (expected.truncated || predicted.truncated) return ['unknown', '? Too many rows to tell whether they match'];
  const a = expected.rows.map(rowKey);
  const b = predicted.rows.map(rowKey);
  if (!ordered) {
    a.sort();
    b.sort();
  }
  const same = expected.columns.length === predicted.columns.length && a.length === b.length && a.every((k, i) => k === b[i]);
  return same ? ['match', '✓ Match'] : ['mismatch', '✗ Mismatch'];
}

// ------------------------------------------------------------------ loading

async function fetchModel(url, onProgress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length')) || page.config.gguf_bytes || 0;
  const reader = response.body.getReader();
  const parts = [];
  let loaded = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    onProgress(loaded, total);
  }
  return new Blob(parts);
}

function threadCount() {
  const asked = Number(params.get('threads'));
  if (asked > 0) return asked;
  if (!self.crossOriginIsolated) return 1; // no COOP/COEP headers: WebAssembly threads are off
  return Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 8));
}

async function load() {
  const t0 = performance.now();
  const status = (text) => ($('load-status').textContent = text);
  const bar = (fraction) => ($('load-bar').style.width = `${Math.round(100 * fraction)}%`);
  page.config = await (await fetch('model.json')).json();
  const config = page.config;
  const size = config.gguf_bytes >= 1e6 ? `${(config.gguf_bytes / 1e6).toFixed(0)} MB` : `${(config.gguf_bytes / 1e3).toFixed(0)} kB`;
  $('model-label').textContent = `${config.label} · ${config.gguf_source} (${size})`;
  showExamples(config.examples || []);

  const pythonReady = python({ op: 'start', prompts: config.prompts }).then((info) => {
    page.timings.python_ready_s = (performance.now() - t0) / 1000;
    return info;
  });
  const sqlReady = new Promise((resolve) => {
    sqlWorker.onmessage = () => resolve();
    sqlWorker.postMessage({ id: 0, job: null });
  });

  status('Downloading the model…');
  const blob = await fetchModel(config.gguf, (loaded, total) => {
    bar(total ? (0.8 * loaded) / total : 0);
    status(`Downloading the model… ${(loaded / 1e6).toFixed(0)}${total ? ` of ${(total / 1e6).toFixed(0)}` : ''} MB`);
  });
  page.timings.download_s = (performance.now() - t0) / 1000;
  status('Starting llama.cpp…');
  bar(0.85);
  const wllama = new Wllama({ default: new URL('runtime/wllama/wllama.wasm', location.href).href }, {
    suppressNativeLog: !params.has('debug'),
    logger: params.has('debug') ? console : { debug() {}, log() {}, warn: console.warn, error: console.error },
  });
  await wllama.loadModel([blob], { n_ctx: config.n_ctx, n_threads: threadCount(), n_gpu_layers: 0 });
  page.wllama = wllama;
  page.timings.model_ready_s = (performance.now() - t0) / 1000;
  status('Starting Python (the training prompt code)…');
  bar(0.95);
  const info = await pythonReady;
  await sqlReady;
  page.timings.ready_s = (performance.now() - t0) / 1000;
  page.threads = wllama.getNumThreads();
  page.multithread = wllama.isMultithread();
  page.add_bos = wllama.mustAddBosToken();
  $('runtime-info').textContent =
    `llama.cpp: ${page.threads} thread${page.threads === 1 ? '' : 's'}` +
    `${self.crossOriginIsolated ? '' : ' (no COOP/COEP headers: single-threaded)'} · Pyodide ${info.python} · ` +
    `ready in ${page.timings.ready_s.toFixed(1)} s`;
  bar(1);
  setState('ready');
  $('ask').disabled = false;
}

function showExamples(examples) {
  const list = $('example-list');
  for (const example of examples) {
    const item = element('li', example.sql_prompt);
    item.addEventListener('click', () => {
      $('question').value = example.sql_prompt;
      $('schema').value = example.sql_context;
      $('expected').value = example.sql || '';
    });
    list.append(item);
  }
  $('examples').hidden = examples.length === 0;
  if (examples.length && !$('schema').value) {
    $('question').value = examples[0].sql_prompt;
    $('schema').value = examples[0].sql_context;
  }
}

// ------------------------------------------------------------------ asking

let abort = null;

async function generate(prompt, onText) {
  const controller = new AbortController();
  abort = controller;
  const started = performance.now();
  let text = '';
  let firstTokenMs = null;
  let chunks = 0;
  let timings = null;
  let stopped = false;
  try {
    await page.wllama.createCompletion({
      prompt,
      stream: true,
      max_tokens: Number(params.get('max_tokens')) || page.config.max_tokens,
      temperature: 0,
      top_k: 1,
      abortSignal: controller.signal,
      onData: (chunk) => {
        const piece = chunk.choices && chunk.choices[0] ? chunk.choices[0].text || '' : '';
        if (piece && firstTokenMs === null) firstTokenMs = performance.now() - started;
        if (piece) chunks += 1;
        if (chunk.timings) timings = chunk.timings;
        text += piece;
        onText(text);
      },
    });
  } catch (error) {
    if (error && error.name === 'AbortError') stopped = true;
    else throw error;
  } finally {
    abort = null;
  }
  const seconds = (performance.now() - started) / 1000;
  return { text, stopped, seconds, firstTokenMs, chunks, timings };
}

async function ask() {
  const question = $('question').value;
  const schemaText = $('schema').value;
  const expectedText = $('expected').value.trim();
  for (const id of ['answer', 'sql', 'result', 'verdict', 'expected-sql', 'expected-result', 'speed']) $(id).replaceChildren();
  $('verdict').className = '';
  $('expected-side').hidden = !expectedText;
  showMessage('');
  $('ask').disabled = true;
  $('stop').disabled = false;
  setState('answering');
  const last = { question, done: false };
  page.last = last;
  try {
    const turn = await python({ op: 'ask', question, schema: schemaText });
    if (turn.error) throw new Error(turn.error);
    last.prompt = turn.prompt;
    // llama.cpp adds the BOS token itself: the text starts after it (the tokens are the same).
    const raw = page.add_bos && turn.bos_token && turn.prompt.startsWith(turn.bos_token)
      ? turn.prompt.slice(turn.bos_token.length) : turn.prompt;
    const answer = await generate(raw, (text) => ($('answer').textContent = text));
    Object.assign(last, {
      answer: answer.text,
      stopped: answer.stopped,
      ttft_ms: answer.firstTokenMs,
      seconds: answer.seconds,
      timings: answer.timings,
      prompt_tokens: answer.timings ? answer.timings.prompt_n : null,
      output_tokens: answer.timings ? answer.timings.predicted_n : answer.chunks,
    });
    const perSecond = answer.timings ? answer.timings.predicted_per_second : answer.chunks / answer.seconds;
    last.tokens_per_s = perSecond;
    $('speed').textContent = `${last.output_tokens} tokens · ${perSecond.toFixed(1)} tokens/s` +
      (answer.firstTokenMs !== null ? ` · first token ${(answer.firstTokenMs / 1000).toFixed(2)} s` : '') +
      (answer.stopped ? ' · stopped' : '');

    const schema = await python({ op: 'schema_statements', schema: turn.schema });
    const limit = page.config.sql_time_limit_ms;
    const found = await python({ op: 'answer_sql', answer: answer.text });
    let predicted = null;
    if (!found.statement) {
      $('sql').textContent = 'No SQL found in the answer.';
    } else {
      $('sql').textContent = found.statement;
      predicted = found.refused ? { status: 'refused', error: found.refused } : await runSql(schema, found.statement, limit);
      renderResult($('result'), predicted);
    }
    last.sql = found.statement;
    last.result = predicted;
    if (expectedText) {
      const wanted = await python({ op: 'expected_sql', text: expectedText });
      $('expected-sql').textContent = wanted.statement || expectedText;
      const expected = wanted.refused ? { status: 'refused', error: wanted.refused }
        : wanted.statement ? await runSql(schema, wanted.statement, limit) : null;
      renderResult($('expected-result'), expected);
      const ordered = wanted.statement ? await python({ op: 'orders_rows', sql: wanted.statement }) : false;
      const [kind, text] = verdict(expected, predicted, ordered);
      $('verdict').textContent = text;
      $('verdict').className = kind;
      last.verdict = text;
    }
  } catch (error) {
    showMessage(String(error && error.message ? error.message : error));
    last.error = String(error && error.message ? error.message : error);
  } finally {
    last.done = true;
    $('ask').disabled = false;
    $('stop').disabled = true;
    setState('done');
  }
}

$('ask').addEventListener('click', () => ask());
$('stop').addEventListener('click', () => abort && abort.abort());
load().catch((error) => fail(`The page could not start: ${error && error.message ? error.message : error}`));
