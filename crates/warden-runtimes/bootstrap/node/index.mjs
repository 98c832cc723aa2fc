// Warden's Node.js runtime: runs a Lambda handler against the Lambda Runtime API.
//
// Warden starts it as `/var/lang/bin/node /var/runtime/node/index.mjs` (Node 18, 20 or 22)
// with the function's environment; `NODE_PATH` is the platform's and is left alone. It uses
// only Node's built-in modules, so neither the host nor the package needs a runtime client.
//
// The contract, as Lambda's Node.js runtimes keep it:
// - `_HANDLER` is `path/to/module.export` (the export may be nested, `module.a.b`), the
//   module below `LAMBDA_TASK_ROOT`. Init failures (`Runtime.ImportModuleError`,
//   `Runtime.HandlerNotFound`, `Runtime.MalformedHandlerName`, `Runtime.UserCodeSyntaxError`
//   or whatever the module threw) go to `/runtime/init/error`, then the process exits 129.
// - A handler answers through the promise it returns, through `callback(error, result)`
//   (its third parameter) or the legacy `context.done/succeed/fail`; the first answer wins.
//   When nothing answers and the event loop runs dry, the answer is `null`.
// - Errors are posted as `{"errorType", "errorMessage", "trace"}` and logged as one
//   `Invoke Error` event. An uncaught exception or an unhandled rejection fails the
//   invocation in progress (or init) and ends the process (status 129 or 128); the
//   platform starts a new one.
// - A handler wrapped in `awslambda.streamifyResponse` is called as
//   `(event, responseStream, context)` and streams its answer: the Runtime API's streaming
//   response mode (a chunked `/response` with `Lambda-Runtime-Function-Response-Mode:
//   streaming`), opened at its first write; an error after that is told in the trailers
//   `Lambda-Runtime-Function-Error-Type` and `-Body`. `awslambda.HttpResponseStream.from`
//   writes the HTTP prelude a function URL reads its status and headers from.
// - `console.*` writes one log event per call: `<time>\t<request id>\t<LEVEL>\t<message>`,
//   or one JSON object with `AWS_LAMBDA_LOG_FORMAT=JSON`. The line breaks of a message are
//   written as carriage returns; the platform's log capture turns them back into line
//   breaks of the same event.

import { Agent, request } from 'node:http';
import { existsSync, readFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format, inspect, types } from 'node:util';
import { Writable } from 'node:stream';

const TASK_ROOT = process.env.LAMBDA_TASK_ROOT ?? '/var/task';
const JSON_LOGS = (process.env.AWS_LAMBDA_LOG_FORMAT ?? '').toUpperCase() === 'JSON';
const LEVELS = { TRACE: 1, DEBUG: 2, INFO: 3, WARN: 4, ERROR: 5, FATAL: 6 };
// The log level filters JSON logs only: Lambda accepts a level only with the JSON format.
const MIN_LEVEL = JSON_LOGS ? LEVELS[(process.env.AWS_LAMBDA_LOG_LEVEL ?? '').toUpperCase()] ?? 1 : 1;

// ---- the Runtime API ----

const API = process.env.AWS_LAMBDA_RUNTIME_API ?? '';
const API_HOST = API.slice(0, API.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
const API_PORT = Number(API.slice(API.lastIndexOf(':') + 1));
// One kept-alive connection. Node unrefs an idle kept-alive socket, so it does not keep
// the event loop alive: `beforeExit` (below) still tells when the handler's work is done.
const AGENT = new Agent({ keepAlive: true, maxSockets: 1 });

// One request to the Runtime API; resolves with the status, headers and body text.
function call(method, path, body, headers = {}, agent = AGENT) {
  return new Promise((resolveCall, rejectCall) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    if (data) headers = { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers };
    const options = { host: API_HOST, port: API_PORT, method, path: `/2018-06-01/runtime${path}`, agent, headers };
    const req = request(options, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        resolveCall({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', rejectCall);
    });
    req.on('error', rejectCall);
    req.end(data);
  });
}

function postError(path, thrown, agent) {
  const payload = errorPayload(thrown);
  // A header value must be printable ASCII (Node refuses the request otherwise); the
  // body keeps the type as it is.
  const type = String(payload.errorType).replace(/[^\x20-\x7e]/g, (c) => encodeURIComponent(c));
  return call('POST', path, JSON.stringify(payload), { 'Lambda-Runtime-Function-Error-Type': type }, agent);
}

// The Runtime API failed us (or the platform is shutting the instance down, 410): there is
// no one to report to, so the process ends and the platform decides what comes next.
function stop(reason) {
  if (reason) log('ERROR', [`Runtime API: ${reason}`]);
  process.exit(reason ? 1 : 0);
}

async function nextInvocation() {
  let answer;
  try {
    answer = await call('GET', '/invocation/next');
  } catch (e) {
    stop(`GET /invocation/next failed: ${e.message}`);
  }
  if (answer.status === 410) stop();
  const id = answer.headers['lambda-runtime-aws-request-id'];
  if (answer.status !== 200) stop(`GET /invocation/next answered ${answer.status}: ${answer.body.slice(0, 200)}`);
  if (!id) stop('GET /invocation/next answered without Lambda-Runtime-Aws-Request-Id');
  return { id, headers: answer.headers, body: answer.body };
}

// ---- logging ----

// The request id in log lines: `undefined` until the first invocation, then the latest
// invocation's (a timer that outlives its invocation logs under that invocation's id).
// The global symbol is where Lambda's runtime keeps it; some logging libraries read it.
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');
const setRequestId = (id) => (globalThis[REQUEST_ID] = id);

const pause = new Int32Array(new SharedArrayBuffer(4));

// Synchronous, so that nothing is lost when the process exits right after.
function writeLine(text) {
  const bytes = Buffer.from(text.replace(/\r?\n/g, '\r') + '\n');
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(1, bytes, done);
    } catch (e) {
      if (e.code !== 'EAGAIN') return;
      Atomics.wait(pause, 0, 0, 1); // a non-blocking pipe is full: wait for its reader
    }
  }
}

// In JSON format an error becomes its constructor's name, message and stack lines, with
// its own enumerable fields.
function jsonReplacer(_key, value) {
  if (!(value instanceof Error)) return value;
  const stack = typeof value.stack === 'string' ? value.stack.split('\n') : value.stack;
  return { errorType: value.constructor?.name ?? 'UnknownError', errorMessage: value.message, stackTrace: stack, ...value };
}

function jsonEvent(level, args) {
  const event = { timestamp: new Date().toISOString(), level, requestId: globalThis[REQUEST_ID] };
  if (args.length <= 1) {
    // A single value is the message as it is (an object stays an object).
    event.message = args[0];
    try {
      return JSON.stringify(event, jsonReplacer);
    } catch {
      event.message = format(args[0]);
      return JSON.stringify(event);
    }
  }
  event.message = format(...args);
  const error = args.find((a) => a instanceof Error);
  if (error) {
    event.errorType = error.constructor?.name ?? 'UnknownError';
    event.errorMessage = error.message;
    event.stackTrace = typeof error.stack === 'string' ? error.stack.split('\n') : [];
  }
  return JSON.stringify(event);
}

function log(level, args) {
  if (LEVELS[level] < MIN_LEVEL) return;
  if (JSON_LOGS) return writeLine(jsonEvent(level, args));
  // `console.log()` logs `undefined`, as on Lambda.
  const message = args.length ? format(...args) : 'undefined';
  writeLine(`${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level}\t${message}`);
}

console.log = console.info = (...args) => log('INFO', args);
console.warn = (...args) => log('WARN', args);
console.error = (...args) => log('ERROR', args);
console.debug = (...args) => log('DEBUG', args);
console.trace = (...args) => log('TRACE', args); // no stack: a plain TRACE event
console.fatal = (...args) => log('FATAL', args);

// ---- errors ----

// Lambda's error types of the runtime's own; the name lives on the prototype, so it is in
// the stack's first line but not among the error's own fields.
function errorClass(type) {
  const cls = class extends Error {};
  Object.defineProperty(cls.prototype, 'name', { value: type, writable: true, configurable: true });
  return cls;
}
const ImportModuleError = errorClass('Runtime.ImportModuleError');
const HandlerNotFound = errorClass('Runtime.HandlerNotFound');
const MalformedHandlerName = errorClass('Runtime.MalformedHandlerName');
const UserCodeSyntaxError = errorClass('Runtime.UserCodeSyntaxError');
const UnhandledRejection = errorClass('Runtime.UnhandledPromiseRejection');

const text = (value) => {
  try {
    return String(value);
  } catch {
    return inspect(value); // an object without a prototype has no `toString`
  }
};

const isError = (v) =>
  types.isNativeError(v) || (!!v && typeof v.name === 'string' && typeof v.message === 'string' && typeof v.stack === 'string');

// The error payload posted for anything thrown. An error: its name, message and stack
// lines. Any other value (a thrown string, `callback('no')`, `context.fail()`): its
// `typeof` as the type ("string", "object", "number"...), its text as the message and an
// empty trace, as Lambda's Node.js runtime reports them.
function errorPayload(thrown) {
  if (isError(thrown)) {
    const trace = typeof thrown.stack === 'string' ? thrown.stack.split('\n') : [];
    return { errorType: thrown.name, errorMessage: thrown.message, trace };
  }
  return { errorType: typeof thrown, errorMessage: text(thrown), trace: [] };
}

// Logs `thrown` as one ERROR event. In text format: the label, a tab, and the error as
// JSON (type, message, `code`, its own enumerable fields, stack lines); a value that is not
// an error is logged as an error made of its text. In JSON format: the error as a message.
function logError(label, thrown) {
  const error = thrown instanceof Error ? thrown : new Error(text(thrown));
  if (JSON_LOGS) return log('ERROR', [error]);
  let json;
  try {
    json = JSON.stringify(error, (_key, value) => {
      if (!(value instanceof Error)) return value;
      const fields = { errorType: value.name, errorMessage: value.message, code: value.code, ...value };
      if (typeof value.stack === 'string') fields.stack = value.stack.split('\n');
      return fields;
    });
  } catch {
    json = JSON.stringify(errorPayload(error)); // a circular or BigInt field
  }
  log('ERROR', [label, `\t${json}`]);
}

// ---- response streaming ----

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';

// The stream a streaming handler writes its answer to. The request to the Runtime API is
// opened at the first write (or at the end, for an empty answer), so that a handler that
// fails before writing is answered with an ordinary `/error`.
class ResponseStream extends Writable {
  constructor(path) {
    super();
    this.path = path;
    this.contentType = 'application/octet-stream';
    this.request = undefined;
    this.finished = new Promise((resolve, reject) => ((this.resolveFinished = resolve), (this.rejectFinished = reject)));
  }

  setContentType(type) {
    if (this.request) throw new Error('the content type must be set before the first write');
    this.contentType = String(type);
  }

  open() {
    if (this.request) return this.request;
    const headers = {
      'Content-Type': this.contentType,
      'Lambda-Runtime-Function-Response-Mode': 'streaming',
      'Transfer-Encoding': 'chunked',
      Trailer: 'Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body',
    };
    const options = { host: API_HOST, port: API_PORT, method: 'POST', path: `/2018-06-01/runtime${this.path}`, agent: AGENT, headers };
    this.request = request(options, (res) => {
      res.resume();
      res.on('end', () => this.resolveFinished(res.statusCode));
      res.on('error', this.rejectFinished);
    });
    this.request.on('error', this.rejectFinished);
    this.request.flushHeaders();
    return this.request;
  }

  _write(chunk, encoding, done) {
    this.open().write(chunk, encoding, done);
  }

  _final(done) {
    this.open().end();
    done();
  }

  // Ends the stream with an error in its trailers.
  fail(thrown) {
    const payload = errorPayload(thrown);
    const type = String(payload.errorType).replace(/[^\x20-\x7e]/g, (c) => encodeURIComponent(c));
    const req = this.open();
    req.addTrailers({
      'Lambda-Runtime-Function-Error-Type': type,
      'Lambda-Runtime-Function-Error-Body': Buffer.from(JSON.stringify(payload)).toString('base64'),
    });
    req.end();
  }
}

// `awslambda.HttpResponseStream.from(stream, { statusCode, headers, cookies })`: the head
// of a function URL's response, written before the body.
class HttpResponseStream {
  static from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION);
    stream.write(JSON.stringify(prelude ?? {}));
    stream.write(new Uint8Array(8));
    return stream;
  }
}

globalThis.awslambda = {
  streamifyResponse(handler) {
    if (typeof handler !== 'function') throw new TypeError('streamifyResponse expects a function');
    handler[STREAMING] = 'response';
    return handler;
  },
  HttpResponseStream,
};

// Runs a streaming handler: its answer is the stream; the invocation is done once the
// stream's request has been answered.
function runStreaming(runtime, event, context, path, post, fail) {
  const stream = new ResponseStream(path);
  let settled = false;
  const failStreaming = (error) => {
    if (settled) return;
    settled = true;
    if (!stream.request) return fail(error); // nothing written yet: an ordinary error
    post(() => {
      logError('Invoke Error', error);
      stream.fail(error);
      return stream.finished;
    });
  };
  const succeed = () => {
    if (settled) return;
    settled = true;
    post(() => {
      if (!stream.writableEnded) stream.end();
      return stream.finished;
    });
  };
  stream.on('error', failStreaming);
  try {
    const returned = runtime.handler(event, stream, context);
    if (returned && typeof returned.then === 'function') returned.then(succeed, failStreaming);
    else stream.on('finish', succeed);
  } catch (e) {
    failStreaming(e);
  }
}

// ---- loading the handler ----

// Modules load with a `require` of this file's, so a missing module's require stack ends
// with the runtime, as on Lambda.
const runtimeRequire = createRequire(import.meta.url);

// Whether a `.js` file in `dir` is an ES module: the nearest package.json says so.
function inModulePackage(dir) {
  for (;;) {
    if (dir.endsWith('/node_modules')) return false;
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        return JSON.parse(readFileSync(manifest, 'utf8')).type === 'module';
      } catch (e) {
        console.warn(`${manifest} cannot be read; it does not make .js files ES modules.`, e);
        return false;
      }
    }
    if (dir === dirname(dir)) return false;
    dir = dirname(dir);
  }
}

// Lambda's lookup order for `module` in `moduleRoot`: the path as named (a file or a
// directory), `module.js` (required, unless its package is `"type": "module"`: then
// imported), `module.mjs` (imported), `module.cjs`, and finally Node's own resolution of
// the name from the task root (a package in node_modules). ES modules load with `import()`
// of a file URL, which also waits for their top-level `await`.
async function loadModule(moduleRoot, module) {
  const base = resolve(TASK_ROOT, moduleRoot, module);
  const requireFile = (file) => (existsSync(file) ? runtimeRequire(file) : undefined);
  const importFile = async (file) => (existsSync(file) ? import(pathToFileURL(file).href) : undefined);
  const asNamed = requireFile(base);
  if (asNamed) return asNamed;
  const esm = existsSync(`${base}.js`) && inModulePackage(dirname(base));
  const loaded =
    (!esm && requireFile(`${base}.js`)) ||
    (esm && (await importFile(`${base}.js`))) ||
    (await importFile(`${base}.mjs`)) ||
    requireFile(`${base}.cjs`);
  if (loaded) return loaded;
  return runtimeRequire(runtimeRequire.resolve(module, { paths: [TASK_ROOT, resolve(TASK_ROOT, moduleRoot)] }));
}

async function loadHandler(handler) {
  if (handler.includes('..')) {
    throw new MalformedHandlerName(
      `'${handler}' is not a valid handler name. Use absolute paths when specifying root directories in handler names.`,
    );
  }
  const moduleRoot = handler.slice(0, handler.lastIndexOf('/') + 1);
  const [module, ...exportPath] = handler.slice(moduleRoot.length).split('.');
  if (!exportPath.length) throw new MalformedHandlerName('Bad handler');
  let loaded;
  try {
    loaded = await loadModule(moduleRoot, module);
  } catch (e) {
    if (e instanceof SyntaxError) throw new UserCodeSyntaxError(text(e));
    if (e?.code === 'MODULE_NOT_FOUND') throw new ImportModuleError(text(e));
    throw e; // what the module itself threw
  }
  const fn = exportPath.reduce((target, key) => target && target[key], loaded);
  if (!fn) throw new HandlerNotFound(`${handler} is undefined or not exported`);
  if (typeof fn !== 'function') throw new HandlerNotFound(`${handler} is not a function`);
  return fn;
}

// The handler is called as the method `handler` of a `Runtime`, so that stack traces name
// it `Runtime.handler`, as on Lambda.
class Runtime {
  constructor(handler) {
    this.handler = handler;
  }
}

// ---- invocations ----

// The invocation in progress (or the last one): `{ id, answered }`.
let current;
// Set once an uncaught error is ending the process.
let dying = false;
// What to do when the event loop has nothing left to run (`beforeExit`): answer the
// invocation that is waiting for it.
let onEmptyLoop = () => {};
process.on('beforeExit', () => onEmptyLoop());

function parseHeader(headers, name, label) {
  const raw = headers[name];
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new Error(`Cannot parse ${label} as JSON: ${e.message}`);
  }
}

// Runs one invocation; resolves once its answer is posted.
function invoke(runtime, event) {
  // The handler runs outside the promise's executor, so that no frame of it appears in
  // the stack traces a function's errors carry.
  let resolveInvocation;
  const settled = new Promise((resolve) => (resolveInvocation = resolve));
  runInvocation(runtime, event, resolveInvocation);
  return settled;
}

function runInvocation(runtime, { id, headers, body }, resolveInvocation) {
  if (dying) return; // an event that came while the process is ending is not run
  const invocation = (current = { id, answered: false });
  setRequestId(id);
  if (headers['lambda-runtime-trace-id']) process.env._X_AMZN_TRACE_ID = headers['lambda-runtime-trace-id'];
  else delete process.env._X_AMZN_TRACE_ID;
  const path = `/invocation/${encodeURIComponent(id)}`;

  const post = (send) => {
    if (invocation.answered || dying) return;
    invocation.answered = true;
    onEmptyLoop = () => {};
    send().then(resolveInvocation, (e) => stop(`posting the answer failed: ${e.message}`));
  };
  const fail = (error) =>
    post(() => {
      logError('Invoke Error', error);
      return postError(`${path}/error`, error);
    });
  // The result is serialised when it is sent (after the event loop emptied, for a
  // callback that waits for it); one that cannot be (circular, BigInt) fails the
  // invocation with a plain Error, as Lambda's Node.js runtime reports it.
  const respond = (result) => {
    let json;
    try {
      json = JSON.stringify(result === undefined ? null : result);
    } catch {
      return fail(new Error('Unable to stringify response body'));
    }
    post(() => call('POST', `${path}/response`, json));
  };

  // callback, context.done/succeed/fail and a returned promise: the first answer wins.
  let claimed = false;
  const once = (fn) => (...args) => {
    if (claimed) return;
    claimed = true;
    fn(...args);
  };
  const done = (error, result) => {
    onEmptyLoop = () => {};
    if (error !== undefined && error !== null) fail(error);
    else respond(result);
  };
  let context;
  const callback = once((error, result) => {
    onEmptyLoop = () => {};
    if (error !== undefined && error !== null) fail(error);
    else if (context && !context.callbackWaitsForEmptyEventLoop) respond(result);
    // `callbackWaitsForEmptyEventLoop` (the default): the answer goes once the timers,
    // sockets and other work the handler left behind are done.
    else onEmptyLoop = () => setImmediate(() => respond(result));
  });
  const succeed = once((result) => done(null, result));
  const failed = once((error) => done(error ?? 'handled')); // `context.fail()`: a "handled" error
  // A handler that never answers: once nothing is left to run, the answer is `null`.
  onEmptyLoop = () => respond(null);

  try {
    const deadline = Number(headers['lambda-runtime-deadline-ms']);
    context = {
      callbackWaitsForEmptyEventLoop: true,
      succeed,
      fail: failed,
      done: once(done),
      functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext: parseHeader(headers, 'lambda-runtime-client-context', 'ClientContext'),
      identity: parseHeader(headers, 'lambda-runtime-cognito-identity', 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: id,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    // An event that is not JSON fails the invocation with the parser's SyntaxError.
    const parsed = JSON.parse(body);
    if (runtime.handler[STREAMING] === 'response') {
      onEmptyLoop = () => {};
      return runStreaming(runtime, parsed, context, `${path}/response`, post, fail);
    }
    const returned = runtime.handler(parsed, context, callback);
    if (returned && typeof returned.then === 'function') {
      returned.then(succeed, failed);
    } else if (returned !== undefined && runtime.handler.length < 3) {
      // Warden's addition: a plain function without a callback parameter that returns a
      // value answers with it. (Lambda answers `null` once the event loop is empty; a
      // function that returns nothing still gets that.)
      succeed(returned);
    }
  } catch (e) {
    callback(e);
  }
}

// ---- failures outside the handler's reach ----

// An uncaught exception (status 129) or an unhandled rejection (128, as Lambda's runtime
// uses) fails the invocation in progress, or the init phase before any invocation, and
// ends the process; the platform starts a new one for the next event. Nothing is posted
// when the last invocation was already answered.
function fatal(label, error, status) {
  if (dying) return;
  dying = true;
  onEmptyLoop = () => {};
  logError(label, error);
  const open = current && !current.answered;
  if (current) current.answered = true; // nothing else answers it now
  const path = !current ? '/init/error' : open ? `/invocation/${encodeURIComponent(current.id)}/error` : undefined;
  // On a connection of its own: the kept-alive one may be waiting on `/invocation/next`.
  const posted = path ? postError(path, error, false) : Promise.resolve();
  posted.catch(() => {}).finally(() => process.exit(status));
}

process.on('uncaughtException', (error) => fatal('Uncaught Exception', error, 129));
process.on('unhandledRejection', (reason, promise) => {
  // The message is the reason's text (`Error: boom` for an error); the reason and the
  // promise are fields of the logged error.
  const error = new UnhandledRejection(text(reason));
  Object.assign(error, { reason, promise });
  fatal('Unhandled Promise Rejection', error, 128);
});

// ---- main ----

let runtime;
try {
  runtime = new Runtime(await loadHandler(process.env._HANDLER ?? ''));
} catch (e) {
  fatal('Uncaught Exception', e, 129);
}
while (runtime) await invoke(runtime, await nextInvocation());
