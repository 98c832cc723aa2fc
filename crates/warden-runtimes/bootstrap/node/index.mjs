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
// - Errors are `{"errorType", "errorMessage", "trace"}`; an unhandled rejection or an
//   uncaught exception during an invocation fails it (`Runtime.UnhandledPromiseRejection`
//   for the former) and ends the process, which the platform replaces.
// - `console.*` writes `<time>\t<request id>\t<LEVEL>\t<message>` (one JSON object per
//   call with `AWS_LAMBDA_LOG_FORMAT=JSON`); a message of several lines is written as one
//   line whose line breaks are carriage returns, which the platform's log capture turns
//   back into line breaks within one log event.

import { Agent, request } from 'node:http';
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format, inspect } from 'node:util';

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

// Lambda's error payload for anything thrown (an `Error`, or any other value).
function errorPayload(thrown, errorType) {
  if (thrown instanceof Error) {
    return {
      errorType: errorType ?? thrown.name ?? thrown.constructor?.name ?? 'Error',
      errorMessage: thrown.message,
      trace: String(thrown.stack ?? '').split('\n'),
    };
  }
  // A thrown string, number or object: its type names it, its text is the message.
  return {
    errorType: errorType ?? typeof thrown,
    errorMessage: typeof thrown === 'string' ? thrown : inspect(thrown),
    trace: [],
  };
}

class Fault extends Error {
  constructor(errorType, message, cause) {
    super(message);
    this.errorType = errorType;
    this.cause = cause;
  }
}

function logInvokeError(error) {
  const shown = { errorType: error.errorType, errorMessage: error.errorMessage, stack: error.trace };
  log('ERROR', [`Invoke Error \t${JSON.stringify(shown)}`]);
}

// ---- loading the handler ----

function moduleType(file) {
  // The nearest package.json above the file decides whether `.js` is an ES module.
  let dir = dirname(file);
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        return JSON.parse(readFileSync(manifest, 'utf8')).type === 'module' ? 'module' : 'commonjs';
      } catch {
        return 'commonjs';
      }
    }
    const up = dirname(dir);
    if (up === dir) return 'commonjs';
    dir = up;
  }
}

async function loadModule(path) {
  const base = resolve(TASK_ROOT, path);
  for (const ext of ['.js', '.mjs', '.cjs']) {
    const file = base + ext;
    if (!existsSync(file)) continue;
    const esm = ext === '.mjs' || (ext === '.js' && moduleType(file) === 'module');
    if (esm) return import(pathToFileURL(file).href);
    return createRequire(file)(file);
  }
  // A directory with an index, or a package name resolvable from the task root.
  try {
    return createRequire(join(TASK_ROOT, 'index.js'))(base);
  } catch (e) {
    if (e && e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${base}'`)) {
      throw new Fault('Runtime.ImportModuleError', `Error: Cannot find module '${path}'`, e);
    }
    throw e;
  }
}

async function loadHandler(handler) {
  const dot = handler.indexOf('.', handler.lastIndexOf('/') + 1);
  if (dot <= 0 || dot === handler.length - 1) {
    throw new Fault('Runtime.MalformedHandlerName', `Bad handler ${handler}`);
  }
  const path = handler.slice(0, dot);
  const exportPath = handler.slice(dot + 1).split('.');
  let module;
  try {
    module = await loadModule(path);
  } catch (e) {
    if (e instanceof Fault) throw e;
    if (e instanceof SyntaxError) {
      throw new Fault('Runtime.UserCodeSyntaxError', `${e.name}: ${e.message}`, e);
    }
    if (e && (e.code === 'MODULE_NOT_FOUND' || e.code === 'ERR_MODULE_NOT_FOUND')) {
      throw new Fault('Runtime.ImportModuleError', `Error: ${e.message}`, e);
    }
    throw e;
  }
  let target = module;
  for (const key of exportPath) target = target?.[key];
  // An ES module's CommonJS-style default export.
  if (target === undefined && module?.default) {
    target = exportPath.reduce((t, k) => t?.[k], module.default);
  }
  if (typeof target !== 'function') {
    throw new Fault('Runtime.HandlerNotFound', `${handler} is undefined or not exported`);
  }
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
  await new Promise((settle) => {
    let finished = false;
    const finish = async (error, result) => {
      if (finished) return;
      finished = true;
      try {
        if (error !== null && error !== undefined) {
          const payload = error instanceof Fault ? errorPayload(error, error.errorType) : errorPayload(error);
          logInvokeError(payload);
          await postError(`/invocation/${requestId}/error`, payload);
        } else {
          let body;
          try {
            body = JSON.stringify(result === undefined ? null : result);
          } catch (e) {
            const payload = { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${e.message}`, trace: [] };
            logInvokeError(payload);
            await postError(`/invocation/${requestId}/error`, payload);
            return;
          }
          await call('POST', `/invocation/${requestId}/response`, body, { 'Content-Type': 'application/json' });
        }
      } finally {
        settle();
      }
    };

    let event;
    try {
      event = answer.body.length ? JSON.parse(answer.body.toString('utf8')) : null;
    } catch (e) {
      finish(new Fault('Runtime.UnmarshalError', `Unable to parse the event: ${e.message}`));
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
    let returned;
    try {
      returned = handler(event, context, callback);
    } catch (e) {
      finish(e);
      return;
    }
    if (returned && typeof returned.then === 'function') {
      returned.then((result) => finish(null, result), (e) => finish(e ?? new Error('rejected')));
    } else if (handler.length < 3) {
      // A plain function that takes no callback: its return value is the result.
      finish(null, returned);
    }
  });
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

// Fails the invocation in progress (or the init phase) with `payload` and ends the
// process, as Lambda's runtime does; the platform starts a new one for the next event.
async function die(payload) {
  log('ERROR', [`${payload.errorType}: ${payload.errorMessage}`]);
  try {
    if (currentRequestId) await postError(`/invocation/${currentRequestId}/error`, payload);
    else await postError('/init/error', payload);
  } finally {
    process.exit(129);
  }
}

process.on('unhandledRejection', (reason) => {
  const text = reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason);
  const payload = {
    errorType: 'Runtime.UnhandledPromiseRejection',
    errorMessage: text,
    trace: reason instanceof Error ? String(reason.stack ?? '').split('\n') : [],
  };
  void die(payload);
});

process.on('uncaughtException', (error) => {
  void die(errorPayload(error));
});

// ---- main ----

async function main() {
  let handler;
  try {
    handler = await loadHandler(process.env._HANDLER ?? '');
  } catch (e) {
    const payload = e instanceof Fault ? errorPayload(e, e.errorType) : errorPayload(e);
    if (e instanceof Fault && e.cause instanceof Error) payload.trace = String(e.cause.stack ?? '').split('\n');
    log('ERROR', [`${payload.errorType}: ${payload.errorMessage}`]);
    await postError('/init/error', payload);
    process.exit(1);
  }
  for (;;) {
    const answer = await next();
    await invoke(handler, answer);
  }
}

await main();
