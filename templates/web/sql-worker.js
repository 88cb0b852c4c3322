// SQLite (sql.js) in its own worker: the page terminates it when a query overruns its time limit.
// One job per message: build a fresh in-memory database from the schema's statements, run ONE statement,
// keep at most maxRows rows. Values go back as plain data; the page shows them as text.
importScripts('runtime/sqljs/sql-wasm.js');

const sqlReady = initSqlJs({ locateFile: (file) => 'runtime/sqljs/' + file });

function plain(value) {
  if (value instanceof Uint8Array) return { bytes: value.length };
  return value;
}

function run(SQL, job) {
  const started = performance.now();
  const db = new SQL.Database();
  try {
    for (const statement of job.schema) {
      try {
        db.run(statement);
      } catch (error) {
        return { status: 'schema_error', error: `Schema: ${error.message} (in: ${statement.slice(0, 200)})` };
      }
    }
    let prepared;
    try {
      prepared = db.prepare(job.statement);
    } catch (error) {
      return { status: 'error', error: error.message };
    }
    const rows = [];
    let truncated = false;
    try {
      while (prepared.step()) {
        if (rows.length >= job.maxRows) {
          truncated = true;
          break;
        }
        rows.push(prepared.get().map(plain));
      }
      return {
        status: 'ok',
        columns: prepared.getColumnNames(),
        rows,
        truncated,
        ms: performance.now() - started,
      };
    } catch (error) {
      return { status: 'error', error: error.message };
    } finally {
      prepared.free();
    }
  } finally {
    db.close();
  }
}

self.onmessage = async (event) => {
  const { id, job } = event.data;
  try {
    const SQL = await sqlReady;
    self.postMessage({ id, result: job ? run(SQL, job) : { status: 'ready' } });
  } catch (error) {
    self.postMessage({ id, result: { status: 'error', error: String(error && error.message ? error.message : error) } });
  }
};
