// Warden's Node.js runtime: runs a Lambda handler against the Lambda Runtime API.
//
// Warden starts it as `/var/lang/bin/node /var/runtime/node/index.mjs` with the function's
// environment (`NODE_PATH` already holds `/opt/nodejs/node_modules` and the SDK). It uses
// only Node's built-in modules, so neither the host nor the package needs a runtime client.
//
// The contract it implements, as Lambda's Node.js runtimes do:
// - `_HANDLER` is `path/to/module.export` (the export may be nested, `module.a.b`); the
//   module is `module.js`, `module.mjs` or `module.cjs` below `LAMBDA_TASK_ROOT`, loaded as
//   an ES module for `.mjs` or a `.js` in a package of `"type": "module"`, else with
//   `require`. Init failures are `Runtime.ImportModuleError`, `Runtime.HandlerNotFound`,
//   `Runtime.MalformedHandlerName` or `Runtime.UserCodeSyntaxError`, posted to
//   `/runtime/init/error` before the process exits.
// - A handler is async (its promise's value is the result), or takes a third parameter,
//   `callback(error, result)`; `context.callbackWaitsForEmptyEventLoop` (default true)
//   makes a callback's answer wait until the event loop has nothing left to do.
// - Errors are `{"errorType", "errorMessage", "trace"}` (a thrown value that is not an error:
//   its type and text), logged as one `Invoke Error` event; an unhandled rejection
//   (`Runtime.UnhandledPromiseRejection`) or an uncaught exception fails the invocation in
//   progress, or the init phase, and ends the process (status 128 or 129), which the
//   platform replaces. A result that cannot be serialised fails the invocation.
// - `console.*` writes `<time>\t<request id>\t<LEVEL>\t<message>` (one JSON object per
//   call with `AWS_LAMBDA_LOG_FORMAT=JSON`); a message of several lines is written as one
//   line whose line breaks are carriage returns, which the platform's log capture turns
//   back into line breaks within one log event.

import { Agent, request } from 'node:http';
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format } from 'node:util';

const RUNTIME_PATH = '/2018-06-01/runtime';
const [HOST, PORT] = splitAddress(process.env.AWS_LAMBDA_RUNTIME_API ?? '');
const AGENT = new Agent({ keepAlive: true, maxSockets: 1 });
const TASK_ROOT = process.env.LAMBDA_TASK_ROOT ?? '/var/task';
const JSON_LOGS = (process.env.AWS_LAMBDA_LOG_FORMAT ?? '').toUpperCase() === 'JSON';
const LEVELS = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4, FATAL: 5 };
const MIN_LEVEL = JSON_LOGS ? (LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL ?? '').toUpperCase()] ?? 0) : 0;

function splitAddress(address) {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}

// ---- the Runtime API ----

function call(method, path, body, headers = {}) {
  return new Promise((resolveCall, rejectCall) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = request(
      {
        host: HOST,
        port: PORT,
        method,
        path: RUNTIME_PATH + path,
        agent: AGENT,
        headers: { ...headers, ...(data ? { 'Content-Length': data.length } : {}) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolveCall({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', rejectCall);
      },
    );
    req.on('error', rejectCall);
    req.end(data);
  });
}

async function next() {
  const answer = await call('GET', '/invocation/next');
  if (answer.status !== 200) throw new Error(`/invocation/next answered ${answer.status}`);
  return answer;
}

function postError(path, error) {
  return call('POST', path, JSON.stringify(error), {
    'Content-Type': 'application/json',
    'Lambda-Runtime-Function-Error-Type': error.errorType,
  });
}

// ---- logging ----

let currentRequestId;

function writeEvent(text) {
  const line = text.replace(/\r\n|\n/g, '\r') + '\n';
  // Synchronous, so nothing is lost when the process ends right after.
  const bytes = Buffer.from(line);
  let written = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(1, bytes, written);
    } catch (e) {
      if (e.code !== 'EAGAIN') return;
    }
  }
}

function log(level, args) {
  if (JSON_LOGS) {
    if (LEVELS[level] < MIN_LEVEL) return;
    const record = { timestamp: new Date().toISOString(), level, requestId: currentRequestId ?? '' };
    if (args.length === 1 && args[0] instanceof Error) {
      record.message = args[0].message;
      record.errorType = args[0].name;
      record.errorMessage = args[0].message;
      record.stackTrace = String(args[0].stack ?? '').split('\n');
    } else {
      record.message = format(...args);
    }
    writeEvent(JSON.stringify(record));
    return;
  }
  writeEvent(`${new Date().toISOString()}\t${currentRequestId}\t${level}\t${format(...args)}`);
}

console.log = (...a) => log('INFO', a);
console.info = (...a) => log('INFO', a);
console.warn = (...a) => log('WARN', a);
console.error = (...a) => log('ERROR', a);
console.debug = (...a) => log('DEBUG', a);
console.trace = (...a) => log('TRACE', a);
console.fatal = (...a) => log('FATAL', a);

// ---- errors ----

// Lambda's error payload for anything thrown: an error's name, message and stack lines;
// any other value's type and text, without a trace.
function errorPayload(thrown) {
  const isError =
    thrown instanceof Error ||
    (thrown && typeof thrown.name === 'string' && typeof thrown.message === 'string' && typeof thrown.stack === 'string');
  if (isError) {
    return {
      errorType: thrown.name,
      errorMessage: thrown.message,
      trace: String(thrown.stack).split('\n'),
    };
  }
  return { errorType: typeof thrown, errorMessage: String(thrown), trace: [] };
}

// An error of the runtime's own (`Runtime.ImportModuleError`...): named so that its stack
// starts with its type, as Lambda shows it.
class Fault extends Error {
  constructor(errorType, message) {
    super(message);
    this.name = errorType;
    Error.captureStackTrace(this, Fault);
  }
}

// Logs `thrown` under `label` as one ERROR event: the label, a tab, and the error as JSON
// (type, message, its own enumerable fields, stack lines); a thrown value that is not an
// error is logged as an error made of its text.
function logError(label, thrown) {
  const error = thrown instanceof Error ? thrown : new Error(thrown);
  let text;
  try {
    text = JSON.stringify({
      errorType: error.name,
      errorMessage: error.message,
      code: error.code,
      ...error,
      stack: typeof error.stack === 'string' ? error.stack.split('\n') : error.stack,
    });
  } catch {
    text = JSON.stringify(errorPayload(error));
  }
  log('ERROR', [`${label} \t${text}`]);
}

// ---- loading the handler ----

const runtimeRequire = createRequire(import.meta.url);

function moduleIsEsm(file) {
  // The nearest package.json above the file decides whether `.js` is an ES module.
  let dir = dirname(file);
  for (;;) {
    if (dir.endsWith('/node_modules')) return false;
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        return JSON.parse(readFileSync(manifest, 'utf8')).type === 'module';
      } catch {
        return false;
      }
    }
    const up = dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
}

// Loads `module` of `moduleRoot` (below the task root) as Lambda does: the file as named,
// then `.js` (CommonJS unless its package says `"type": "module"`), `.mjs`, `.cjs`, and
// finally a package of that name resolved from the task root.
async function loadModule(moduleRoot, module) {
  const base = resolve(TASK_ROOT, moduleRoot, module);
  const requireFile = (file) => (existsSync(file) ? createRequire(file)(file) : undefined);
  const importFile = async (file) => (existsSync(file) ? import(pathToFileURL(file).href) : undefined);
  const plain = requireFile(base);
  if (plain) return plain;
  const esm = existsSync(base + '.js') && moduleIsEsm(base + '.js');
  if (!esm) {
    const loaded = requireFile(base + '.js');
    if (loaded) return loaded;
  }
  const loaded = (esm && (await importFile(base + '.js'))) || (await importFile(base + '.mjs')) || requireFile(base + '.cjs');
  if (loaded) return loaded;
  return runtimeRequire(runtimeRequire.resolve(module, { paths: [TASK_ROOT, resolve(TASK_ROOT, moduleRoot)] }));
}

async function loadHandler(handler) {
  if (handler.includes('..')) {
    throw new Fault('Runtime.MalformedHandlerName', `'${handler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`);
  }
  const slash = handler.lastIndexOf('/');
  const moduleRoot = handler.slice(0, slash + 1);
  const rest = handler.slice(slash + 1);
  const dot = rest.indexOf('.');
  if (dot < 0) throw new Fault('Runtime.MalformedHandlerName', 'Bad handler');
  const module = rest.slice(0, dot);
  const exportPath = rest.slice(dot + 1);
  let loaded;
  try {
    loaded = await loadModule(moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) throw new Fault('Runtime.UserCodeSyntaxError', String(e));
    if (e && e.code === 'MODULE_NOT_FOUND') throw new Fault('Runtime.ImportModuleError', String(e));
    throw e;
  }
  const target = exportPath.split('.').reduce((t, k) => t && t[k], loaded);
  if (!target) throw new Fault('Runtime.HandlerNotFound', `${handler} is undefined or not exported`);
  if (typeof target !== 'function') throw new Fault('Runtime.HandlerNotFound', `${handler} is not a function`);
  return target;
}

// ---- one invocation ----

function makeContext(headers, done) {
  const deadline = Number(headers['lambda-runtime-deadline-ms'] ?? 0);
  const json = (name) => {
    const raw = headers[name];
    if (!raw) return undefined;
    try {
      return JSON.parse(raw);
    } catch {
      return undefined;
    }
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
    identity: json('lambda-runtime-cognito-identity'),
    clientContext: json('lambda-runtime-client-context'),
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
    // The legacy completion methods.
    done: (error, result) => done(error, result),
    succeed: (result) => done(null, result),
    fail: (error) => done(error ?? 'handled'),
  };
}

async function invoke(handler, answer) {
  const headers = answer.headers;
  const requestId = headers['lambda-runtime-aws-request-id'];
  currentRequestId = requestId;
  if (headers['lambda-runtime-trace-id']) {
    process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
  } else {
    delete process.env._X_AMZN_TRACE_ID;
  }
  let settle;
  const settled = new Promise((s) => (settle = s));
  let finished = false;
  const fail = async (error) => {
    logError('Invoke Error', error);
    await postError(`/invocation/${requestId}/error`, errorPayload(error));
  };
  const finish = async (error, result) => {
    if (finished) return;
    finished = true;
    try {
      if (error !== null && error !== undefined) {
        await fail(error);
        return;
      }
      let body;
      try {
        body = JSON.stringify(result === undefined ? null : result);
      } catch {
        await fail(new Error('Unable to stringify response body'));
        return;
      }
      await call('POST', `/invocation/${requestId}/response`, body, { 'Content-Type': 'application/json' });
    } finally {
      settle();
    }
  };

  let event;
  try {
    event = answer.body.length ? JSON.parse(answer.body.toString('utf8')) : null;
  } catch (e) {
    await finish(new Fault('Runtime.UnmarshalError', `Unable to unmarshal input: ${e.message}`));
    return;
  }
  let context;
  const callback = (error, result) => {
    // With `callbackWaitsForEmptyEventLoop`, the answer goes once nothing else is
    // pending: after the timers and I/O the handler left behind have run.
    if (context.callbackWaitsForEmptyEventLoop) {
      waitForEmptyLoop().then(() => finish(error, result));
    } else {
      finish(error, result);
    }
  };
  context = makeContext(headers, callback);
  // Called as a method named `handler`, as Lambda calls it (stack traces name it so).
  const user = { handler };
  let returned;
  try {
    returned = user.handler(event, context, callback);
  } catch (e) {
    finish(e);
  }
  if (returned && typeof returned.then === 'function') {
    returned.then(
      (result) => finish(null, result),
      (e) => finish(e ?? new Error('rejected')),
    );
  } else if (!finished && handler.length < 3) {
    // A plain function that takes no callback: its return value is the result.
    finish(null, returned);
  }
  await settled;
  currentRequestId = undefined;
}

// Resolves once the event loop holds nothing but the runtime's own connection and
// streams: the timers, file operations and other work the handler left behind are done
// (`process.getActiveResourcesInfo` lists what keeps the loop alive).
function waitForEmptyLoop() {
  const own = new Set(['TTYWrap', 'PipeWrap', 'TCPSocketWrap', 'Immediate']);
  return new Promise((done) => {
    const check = () => {
      if (process.getActiveResourcesInfo().every((r) => own.has(r))) done();
      else setTimeout(check, 1);
    };
    setImmediate(check);
  });
}

// ---- failures outside the handler's reach ----

// An uncaught exception or an unhandled rejection fails the invocation in progress (or
// the init phase) and ends the process, as Lambda's runtime does (exit status 129 and 128);
// the platform starts a new one for the next event.
async function die(label, error, status) {
  logError(label, error);
  try {
    const payload = errorPayload(error);
    if (currentRequestId) await postError(`/invocation/${currentRequestId}/error`, payload);
    else await postError('/init/error', payload);
  } finally {
    process.exit(status);
  }
}

process.on('unhandledRejection', (reason) => {
  void die('Unhandled Promise Rejection', new Fault('Runtime.UnhandledPromiseRejection', String(reason)), 128);
});

process.on('uncaughtException', (error) => {
  void die('Uncaught Exception', error, 129);
});

// ---- main ----

async function main() {
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER ?? '');
  } catch (e) {
    await die('Uncaught Exception', e, 129);
  }
  for (;;) {
    const answer = await next();
    await invoke(handler, answer);
  }
}

await main();
