//! The floor of the warm path: the least a server can do to carry an Invoke to an
//! unmodified Lambda runtime client and back, measured by `cargo xtask bench --compare`
//! beside Warden and the peer.
//!
//! It answers the Invoke API (any `POST`: its body is the event) and the three Runtime API
//! calls a function makes (`/next`, `/response`, `/error`) over HTTP/1.1 with `hyper`, on
//! the same `tokio` runtime Warden uses, with the headers Lambda's `/next` carries, and
//! runs `--instances` copies of `--function` as plain child processes. It checks nothing:
//! no signature, no authorization, no limits, no sandbox, no logs (the functions' output
//! goes to `/dev/null`). Whatever an invoke costs here, every implementation of the
//! protocol on the machine pays at least.
//!
//! ```text
//! floor --function PATH --instances N
//! ```
//!
//! prints `invoke http://127.0.0.1:PORT` once its listeners are up, then serves until its
//! standard input closes (it kills its children on the way out).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// One invocation: its event, and where its answer goes.
struct Job {
    event: Bytes,
    reply: oneshot::Sender<(StatusCode, Bytes)>,
}

struct Relay {
    /// Invocations no instance has taken yet; every `/next` waits on it.
    jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    queue: mpsc::Sender<Job>,
    /// Invocations an instance has taken, by request id.
    taken: Mutex<HashMap<u64, oneshot::Sender<(StatusCode, Bytes)>>>,
    next_id: AtomicU64,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: Bytes) -> Answer {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn invoke(relay: Arc<Relay>, request: Request<Incoming>) -> Result<Answer, Infallible> {
    let Ok(body) = request.into_body().collect().await else {
        return Ok(answer(StatusCode::BAD_REQUEST, Bytes::new()));
    };
    let (reply, answered) = oneshot::channel();
    let job = Job {
        event: body.to_bytes(),
        reply,
    };
    if relay.queue.send(job).await.is_err() {
        return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, Bytes::new()));
    }
    Ok(match answered.await {
        Ok((status, body)) => answer(status, body),
        Err(_) => answer(StatusCode::BAD_GATEWAY, Bytes::new()),
    })
}

async fn runtime(relay: Arc<Relay>, request: Request<Incoming>) -> Result<Answer, Infallible> {
    const PREFIX: &str = "/2018-06-01/runtime/invocation/";
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(answer(StatusCode::NOT_FOUND, Bytes::new()));
    };
    if rest == "next" {
        let job = relay.jobs.lock().await.recv().await;
        let Some(job) = job else {
            return Ok(answer(StatusCode::SERVICE_UNAVAILABLE, Bytes::new()));
        };
        let id = relay.next_id.fetch_add(1, Ordering::Relaxed);
        relay
            .taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, job.reply);
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            + 3_000;
        let mut response = answer(StatusCode::OK, job.event);
        let headers = response.headers_mut();
        headers.insert("lambda-runtime-aws-request-id", id.into());
        headers.insert(
            "lambda-runtime-deadline-ms",
            deadline
                .to_string()
                .parse()
                .expect("digits are a header value"),
        );
        // Lambda sends a trace header with every invocation, and runtime clients act on it
        // (`lambda_runtime` puts it in `_X_AMZN_TRACE_ID`), so the floor sends one too.
        headers.insert(
            "lambda-runtime-trace-id",
            format!("Root=1-00000000-{id:024x};Parent={id:016x};Sampled=0")
                .parse()
                .expect("hex digits are a header value"),
        );
        headers.insert(
            "lambda-runtime-invoked-function-arn",
            hyper::header::HeaderValue::from_static(
                "arn:aws:lambda:us-east-1:000000000000:function:floor",
            ),
        );
        return Ok(response);
    }
    let (id, verb) = rest.split_once('/').unwrap_or((rest, ""));
    let status = match verb {
        "response" => StatusCode::OK,
        "error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => return Ok(answer(StatusCode::NOT_FOUND, Bytes::new())),
    };
    let reply = id.parse::<u64>().ok().and_then(|id| {
        relay
            .taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    });
    let Some(reply) = reply else {
        return Ok(answer(StatusCode::NOT_FOUND, Bytes::new()));
    };
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(answer(StatusCode::BAD_REQUEST, Bytes::new())),
    };
    let _ = reply.send((status, body));
    // What Lambda's Runtime API answers.
    Ok(answer(
        StatusCode::ACCEPTED,
        Bytes::from_static(br#"{"status":"OK"}"#),
    ))
}

/// Serves every connection of `listener` with `handle`.
async fn serve<F, Fut>(listener: TcpListener, relay: Arc<Relay>, handle: F)
where
    F: Fn(Arc<Relay>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Answer, Infallible>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let relay = relay.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |r| handle(relay.clone(), r));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut function = None;
    let mut instances = 1_usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--function" => function = args.next(),
            "--instances" => instances = args.next().ok_or("--instances N")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let function = function.ok_or("--function PATH is required")?;
    // As many workers as `warden serve` has by default (half the CPUs, at least one), so
    // that the two are compared on the same threads.
    let workers = std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1));
    let runtime_threads = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime_threads.block_on(async move {
        let invoke_listener = TcpListener::bind("127.0.0.1:0").await?;
        let runtime_listener = TcpListener::bind("127.0.0.1:0").await?;
        let runtime_address = runtime_listener.local_addr()?;
        let (queue, jobs) = mpsc::channel(1024);
        let relay = Arc::new(Relay {
            jobs: tokio::sync::Mutex::new(jobs),
            queue,
            taken: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        });
        let invoke_address = invoke_listener.local_addr()?;
        tokio::spawn(serve(runtime_listener, relay.clone(), runtime));
        tokio::spawn(serve(invoke_listener, relay, invoke));
        let mut children = Vec::new();
        for _ in 0..instances {
            children.push(
                tokio::process::Command::new(&function)
                    .env_clear()
                    .env("AWS_LAMBDA_RUNTIME_API", runtime_address.to_string())
                    .env("AWS_LAMBDA_FUNCTION_NAME", "floor")
                    .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
                    .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/floor")
                    .env("AWS_LAMBDA_LOG_STREAM_NAME", "floor")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        println!("invoke http://{invoke_address}");
        // Serves until standard input closes; the children are killed on the way out.
        tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
            .await??;
        drop(children);
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
