"""Warden's Python runtime: runs a Lambda handler against the Lambda Runtime API.

Warden starts it as `/var/lang/bin/pythonX.Y -u -S /var/runtime/python/bootstrap.py` with
the function's environment. `-S` keeps the interpreter's own site-packages (the host's)
out of `sys.path`; this file then builds `sys.path` as Lambda does. It uses only the
standard library, so neither the host nor the function package needs a runtime client.

The contract it implements, as Lambda's Python runtimes do:
- `_HANDLER` is `module.function` or `pkg/sub/module.function`; import failures are
  `Runtime.ImportModuleError`, `Runtime.UserCodeSyntaxError` or `Runtime.HandlerNotFound`,
  posted to `/runtime/init/error` before the process exits;
- each event from `/invocation/next` is passed with a context object; the result is posted
  as JSON (`Runtime.MarshalError` if it cannot be), an exception as
  `{"errorMessage", "errorType", "requestId", "stackTrace"}`;
- `logging` writes `[LEVEL]\\t<time>\\t<request id>\\t<message>` (or one JSON object per
  record with `AWS_LAMBDA_LOG_FORMAT=JSON`); a record, or a reported error, that spans
  several lines is written as one line whose line breaks are carriage returns, which the
  platform's log capture turns back into line breaks within one log event.
"""

import importlib
import importlib.machinery
import json
import os
import socket
import sys
import time

RUNTIME_PATH = "/2018-06-01/runtime"


def _build_sys_path():
    """`sys.path` as on Lambda: the code, the layers, the runtime, the standard library."""
    version = "python%d.%d" % sys.version_info[:2]
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    runtime_dir = os.environ.get("LAMBDA_RUNTIME_DIR", "/var/runtime")
    # What the interpreter put there itself, without `site`: the script's directory and the
    # standard library (zip, directory, lib-dynload).
    here = os.path.dirname(os.path.abspath(__file__))
    pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    stdlib = [p for p in sys.path if p and p not in pythonpath and os.path.abspath(p) != here]
    user = [p for p in pythonpath if p != runtime_dir]
    layer_site = "/opt/python/lib/%s/site-packages" % version
    sdk = os.path.join(runtime_dir, "sdk", "python")
    paths = [task_root] + user + [layer_site, "/opt/python", runtime_dir]
    if os.path.isdir(sdk):
        paths.append(sdk)
    sys.path[:] = paths + stdlib
    # A layer's `.pth` files take effect as they would in site-packages.
    if os.path.isdir(layer_site):
        import site

        site.addsitedir(layer_site)
        if sys.path[-1] == layer_site:
            sys.path.pop()


_build_sys_path()


class _Rapid:
    """The Runtime API, over one kept-alive HTTP/1.1 connection.

    A few lines of HTTP rather than `http.client`, whose import (it brings `email` and
    `ssl`) costs more than the rest of this runtime's start. The peer is Warden's own
    Runtime API server on the instance's loopback, which answers with a `Content-Length`
    or chunked body.
    """

    def __init__(self, address):
        host, _, port = address.rpartition(":")
        self._address = (host, int(port))
        self._sock = None
        self._reader = None

    def _connect(self):
        self._sock = socket.create_connection(self._address)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._sock.makefile("rb")

    def _call(self, method, path, body=b"", headers=None):
        if self._sock is None:
            self._connect()
        lines = ["%s %s%s HTTP/1.1" % (method, RUNTIME_PATH, path), "Host: localhost"]
        for name, value in (headers or {}).items():
            lines.append("%s: %s" % (name, value))
        lines.append("Content-Length: %d" % len(body))
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        status_line = self._reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2:
            raise ConnectionError("the Runtime API closed the connection")
        status = int(parts[1])
        response_headers = {}
        while True:
            line = self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            response_headers[name.strip().lower()] = value.strip()
        if response_headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self._reader.readline().split(b";")[0], 16)
                if size == 0:
                    self._reader.readline()
                    break
                chunks.append(self._reader.read(size))
                self._reader.readline()
            data = b"".join(chunks)
        else:
            data = self._reader.read(int(response_headers.get("content-length", "0")))
        if response_headers.get("connection", "").lower() == "close":
            self._sock.close()
            self._sock = None
        return status, response_headers, data

    def next(self):
        status, headers, body = self._call("GET", "/invocation/next")
        if status != 200:
            raise RuntimeError("/invocation/next answered %d" % status)
        return headers, body

    def respond(self, request_id, body):
        self._call(
            "POST",
            "/invocation/%s/response" % request_id,
            body,
            {"Content-Type": "application/json"},
        )

    def error(self, request_id, error):
        self._post_error("/invocation/%s/error" % request_id, error)

    def init_error(self, error):
        self._post_error("/init/error", error)

    def _post_error(self, path, error):
        body = json.dumps(error).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Function-Error-Type": error.get("errorType", "Unhandled"),
        }
        self._call("POST", path, body, headers)


# ---- logging ----
#
# `logging` is configured the moment something imports it (the function's code, or a
# library): a function that never logs through it does not pay for importing it at start.

_request_id = [None]
_JSON_LOGS = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"


def _write_event(text):
    """Writes one log event: its own line breaks become carriage returns."""
    sys.stdout.write(text.replace("\r\n", "\r").replace("\n", "\r") + "\n")
    sys.stdout.flush()


def _utc(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".%03dZ" % (
        int(seconds * 1000) % 1000
    )


def _install_logging(logging):
    """Gives the root logger Lambda's handler and format."""
    import traceback

    class LambdaFormatter(logging.Formatter):
        def format(self, record):
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if _JSON_LOGS:
                out = {
                    "timestamp": _utc(record.created),
                    "level": record.levelname,
                    "message": record.getMessage(),
                    "logger": record.name,
                    "requestId": _request_id[0] or "",
                }
                if record.exc_info and record.exc_info[0] is not None:
                    etype, value, tb = record.exc_info
                    out["errorType"] = etype.__name__
                    out["errorMessage"] = str(value)
                    out["stackTrace"] = traceback.format_tb(tb)
                return json.dumps(out, default=str, ensure_ascii=False)
            return "[%s]\t%s\t%s\t%s" % (
                record.levelname,
                _utc(record.created),
                _request_id[0],
                message,
            )

    class LambdaHandler(logging.Handler):
        def emit(self, record):
            try:
                _write_event(self.format(record))
            except Exception:
                self.handleError(record)

    logging.addLevelName(5, "TRACE")
    logging.Formatter.converter = time.gmtime
    root = logging.getLogger()
    handler = LambdaHandler()
    handler.setFormatter(LambdaFormatter())
    root.handlers[:] = [handler]
    # As on Lambda: the root logger is at WARNING unless the function's JSON logging
    # configuration names a level.
    levels = {
        "TRACE": 5,
        "DEBUG": logging.DEBUG,
        "INFO": logging.INFO,
        "WARN": logging.WARNING,
        "ERROR": logging.ERROR,
        "FATAL": logging.CRITICAL,
    }
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    if _JSON_LOGS and level in levels:
        root.setLevel(levels[level])


class _ConfigureLoggingOnImport:
    """A finder that lets the normal one load `logging`, then configures it, once."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_configure(module):
            exec_module(module)
            _install_logging(module)

        spec.loader.exec_module = exec_and_configure
        return spec


# ---- errors ----


def _error(message, error_type, stack_trace=None, request_id=None):
    return {
        "errorMessage": message or "",
        "errorType": error_type,
        "requestId": request_id or "",
        "stackTrace": stack_trace or [],
    }


def _user_frames(tb):
    """The traceback without the runtime's own frames at its top, each frame as file,
    line, function and source text (without the column markers of newer Pythons, as
    Lambda reports them)."""
    import traceback

    frames = [(f.filename, f.lineno, f.name, f.line) for f in traceback.extract_tb(tb)]
    for i, frame in enumerate(frames):
        if not frame[0].endswith("/bootstrap.py"):
            return traceback.format_list(frames[i:])
    return []


def _fault(exc_info, request_id=None):
    etype, value, tb = exc_info
    return _error(str(value), etype.__name__, _user_frames(tb), request_id)


def _log_error(error):
    """One log event for an error, as Lambda prints it."""
    head = "[ERROR]"
    if error.get("errorType"):
        head += " " + error["errorType"]
    if error.get("errorMessage"):
        head += (":" if error.get("errorType") else "") + " " + error["errorMessage"]
    lines = [head]
    # The header is written even for an empty trace, as Lambda writes it.
    if error.get("stackTrace") is not None:
        lines.append("Traceback (most recent call last):")
        for element in error["stackTrace"]:
            lines.extend(element.splitlines())
    _write_event("\n".join(lines))


class _Fault(Exception):
    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error = _error(message, error_type, trace)


def _load_handler(handler):
    try:
        path, function = handler.rsplit(".", 1)
    except ValueError as e:
        raise _Fault("Runtime.MalformedHandlerName", "Bad handler '%s': %s" % (handler, e))
    if path.split(".")[0] in sys.builtin_module_names:
        raise _Fault(
            "Runtime.BuiltInModuleConflict",
            "Cannot use built-in module %s as a handler module" % path,
        )
    try:
        module = importlib.import_module(path.replace("/", "."))
    except ImportError as e:
        raise _Fault("Runtime.ImportModuleError", "Unable to import module '%s': %s" % (path, e))
    except SyntaxError as e:
        trace = ['  File "%s" Line %s\n    %s' % (e.filename, e.lineno, e.text)]
        raise _Fault(
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module '%s': %s" % (path, e),
            trace,
        )
    try:
        return getattr(module, function)
    except AttributeError:
        raise _Fault(
            "Runtime.HandlerNotFound",
            "Handler '%s' missing on module '%s'" % (function, path),
        )


# ---- the context object ----


class CognitoIdentity:
    __slots__ = ["cognito_identity_id", "cognito_identity_pool_id"]


class Client:
    __slots__ = [
        "installation_id",
        "app_title",
        "app_version_name",
        "app_version_code",
        "app_package_name",
    ]


class ClientContext:
    __slots__ = ["custom", "env", "client"]


def _identity(raw):
    """Always an object, as on Lambda; its fields are `None` without a Cognito identity."""
    raw = raw or {}
    identity = CognitoIdentity()
    identity.cognito_identity_id = raw.get("cognitoIdentityId")
    identity.cognito_identity_pool_id = raw.get("cognitoIdentityPoolId")
    return identity


def _client_context(raw):
    if raw is None:
        return None
    context = ClientContext()
    context.custom = raw.get("custom")
    context.env = raw.get("env")
    client = raw.get("client")
    if client is not None:
        context.client = Client()
        context.client.installation_id = client.get("installation_id")
        context.client.app_title = client.get("app_title")
        context.client.app_version_name = client.get("app_version_name")
        context.client.app_version_code = client.get("app_version_code")
        context.client.app_package_name = client.get("app_package_name")
    else:
        context.client = None
    return context


class LambdaContext:
    def __init__(self, request_id, deadline_ms, arn, client_context, identity, tenant_id=None):
        self.aws_request_id = request_id
        self.tenant_id = tenant_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.client_context = _client_context(client_context)
        self.identity = _identity(identity)
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self):
        return "LambdaContext([aws_request_id=%s,function_name=%s,function_version=%s])" % (
            self.aws_request_id,
            self.function_name,
            self.function_version,
        )


def _json_header(headers, key, name):
    raw = headers.get(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise _Fault("Runtime.LambdaContextUnmarshalError", "Unable to parse %s JSON: %s" % (name, e))


# Python 3.12 and later runtimes write non-ASCII characters as they are; earlier ones
# escape them, as Lambda's do.
_ENSURE_ASCII = sys.version_info < (3, 12)


def _to_json(value):
    """`value` as JSON. A `Decimal` is written as its exact decimal text (NaN as `NaN`),
    which the standard encoder cannot do: it is encoded as a unique placeholder string,
    replaced afterwards."""
    decimals = []
    marker = "\x00%s:" % os.urandom(8).hex()

    class Encoder(json.JSONEncoder):
        def default(self, o):
            decimal = sys.modules.get("decimal")
            if decimal is not None and isinstance(o, decimal.Decimal):
                decimals.append("NaN" if o.is_nan() else str(o))
                return "%s%d\x00" % (marker, len(decimals) - 1)
            return super().default(o)

    text = json.dumps(value, cls=Encoder, ensure_ascii=_ENSURE_ASCII)
    for i, number in enumerate(decimals):
        placeholder = json.dumps("%s%d\x00" % (marker, i))
        text = text.replace(placeholder, number, 1)
    return text.encode("utf-8")


def _handle(rapid, handler, headers, body):
    request_id = headers.get("lambda-runtime-aws-request-id", "")
    _request_id[0] = request_id
    trace_id = headers.get("lambda-runtime-trace-id")
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    try:
        deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
    except ValueError:
        deadline_ms = 0
    try:
        context = LambdaContext(
            request_id,
            deadline_ms,
            headers.get("lambda-runtime-invoked-function-arn"),
            _json_header(headers, "lambda-runtime-client-context", "Client Context"),
            _json_header(headers, "lambda-runtime-cognito-identity", "Cognito Identity"),
            headers.get("lambda-runtime-aws-tenant-id"),
        )
        try:
            event = json.loads(body) if body else None
        except ValueError as e:
            raise _Fault("Runtime.UnmarshalError", "Unable to unmarshal input: %s" % e)
        result = handler(event, context)
        if isinstance(result, bytes):
            payload = result
        else:
            try:
                payload = _to_json(result)
            except Exception as e:
                raise _Fault("Runtime.MarshalError", "Unable to marshal response: %s" % e)
    except _Fault as fault:
        error = dict(fault.error, requestId=request_id)
    except Exception:
        error = _fault(sys.exc_info(), request_id)
    else:
        rapid.respond(request_id, payload)
        return
    _log_error(error)
    rapid.error(request_id, error)


def main():
    rapid = _Rapid(os.environ["AWS_LAMBDA_RUNTIME_API"])
    if "logging" in sys.modules:
        _install_logging(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _ConfigureLoggingOnImport())
    try:
        handler = _load_handler(os.environ.get("_HANDLER", ""))
    except _Fault as fault:
        error = fault.error
    except Exception:
        error = _fault(sys.exc_info())
    else:
        error = None
    if error is not None:
        _log_error(error)
        rapid.init_error(error)
        sys.exit(1)
    while True:
        headers, body = rapid.next()
        _handle(rapid, handler, headers, body)
        _request_id[0] = None


if __name__ == "__main__":
    main()
