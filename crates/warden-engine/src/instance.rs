//! One running function instance: its process, Runtime API channel, log capture and exit
//! watch, plus the environment Lambda gives a function.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;
use warden_executor::{ExitStatus, InstanceId, InstanceSpec};
use warden_runtime_api::InstanceChannel;
use warden_types::{FunctionVersion, Region, Runtime};

use crate::logs::LogCapture;

pub struct Instance {
    pub id: InstanceId,
    pub pid: i32,
    pub channel: InstanceChannel,
    pub logs: Arc<LogCapture>,
    pub exit: watch::Receiver<Option<ExitStatus>>,
    /// When the engine asked for the process: the start of the init phase.
    pub spawned_at: Instant,
    pub last_used: Mutex<Instant>,
    /// Whether an invocation already ran here (only the first reports `Init Duration`).
    pub used: std::sync::atomic::AtomicBool,
}

impl Instance {
    pub fn new(
        id: InstanceId,
        pid: i32,
        runtime_api: std::net::TcpListener,
        exited: tokio::sync::oneshot::Receiver<ExitStatus>,
        logs: Arc<LogCapture>,
        spawned_at: Instant,
    ) -> std::io::Result<Self> {
        let channel = InstanceChannel::serve(runtime_api)?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = exited.await.unwrap_or(ExitStatus::Lost);
            let _ = tx.send(Some(status));
        });
        Ok(Self {
            id,
            pid,
            channel,
            logs,
            exit: rx,
            spawned_at,
            last_used: Mutex::new(Instant::now()),
            used: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Resolves with the exit status once the process has ended.
    pub async fn exited(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(|s| s.is_some()).await {
            Ok(s) => s.unwrap_or(ExitStatus::Lost),
            Err(_) => ExitStatus::Lost,
        };
        status
    }
}

/// Where the runtime of a function version comes from.
pub struct RuntimeSettings<'a> {
    pub python: &'a Path,
    pub region: &'a Region,
}

/// Builds the process description Lambda would start for `config`, or the
/// `Runtime.InvalidEntrypoint` message when it cannot start.
pub fn instance_spec(
    config: &FunctionVersion,
    code_dir: &Path,
    rt: &RuntimeSettings<'_>,
) -> Result<InstanceSpec, String> {
    let runtime = config
        .runtime()
        .ok_or_else(|| format!("unsupported runtime `{}`", config.runtime))?;
    let task_root = code_dir.to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = config
        .environment
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let log_stream = format!(
        "{}/[{}]{}",
        &warden_types::iso_timestamp(warden_types::now_millis())[..10].replace('-', "/"),
        config.version,
        uuid::Uuid::new_v4().simple()
    );
    let platform = [
        ("AWS_REGION", rt.region.to_string()),
        ("AWS_DEFAULT_REGION", rt.region.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", config.name.to_string()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            config.memory_mb.to_string(),
        ),
        ("AWS_LAMBDA_FUNCTION_VERSION", config.version.clone()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", config.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", log_stream),
        (
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", runtime.as_str()),
        ),
        ("_HANDLER", config.handler.clone()),
        ("LAMBDA_TASK_ROOT", task_root.clone()),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".into()),
        ("TZ", ":UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME", "/tmp".into()),
    ];
    env.extend(platform.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let (program, args) = match runtime {
        Runtime::Provided(_) => {
            let bootstrap = code_dir.join("bootstrap");
            if !bootstrap.is_file() {
                return Err("Couldn't find valid bootstrap(s): [/var/task/bootstrap]".into());
            }
            (bootstrap, Vec::new())
        }
        Runtime::Python(_) => {
            env.push(("PYTHONPATH".into(), task_root));
            env.push(("PYTHONUNBUFFERED".into(), "1".into()));
            (
                rt.python.to_path_buf(),
                vec!["-m".into(), "awslambdaric".into(), config.handler.clone()],
            )
        }
    };
    Ok(InstanceSpec {
        program,
        args,
        env,
        cwd: code_dir.to_path_buf(),
        code_dir: code_dir.to_path_buf(),
        memory_mb: config.memory_mb,
        tmp_mb: config.ephemeral_storage_mb,
    })
}

/// The `errorType` Lambda reports when a runtime process ends without answering:
/// `Runtime.OutOfMemory` when the memory limit killed it, `Runtime.ExitError` otherwise.
pub fn exit_error_type(status: ExitStatus) -> &'static str {
    match status {
        ExitStatus::OutOfMemory => "Runtime.OutOfMemory",
        _ => "Runtime.ExitError",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_memory_has_its_own_error_type() {
        assert_eq!(
            exit_error_type(ExitStatus::OutOfMemory),
            "Runtime.OutOfMemory"
        );
        assert_eq!(exit_error_type(ExitStatus::Signal(9)), "Runtime.ExitError");
        assert_eq!(exit_error_type(ExitStatus::Code(1)), "Runtime.ExitError");
    }
}
