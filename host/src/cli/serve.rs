//! `jetstream-pubsub serve`: the component as a Dapr pluggable pub/sub, on a Unix socket
//! in the folder daprd scans at start.

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use jetstream_pubsub_host::pluggable::{Server, proto::PUBSUB_SERVICE};

use super::operations::MetricsArgs;
use super::{Failure, SandboxArgs, ShutdownSignals};

/// daprd's variable for the folder it scans for component sockets.
const DAPRD_FOLDER_VARIABLE: &str = "DAPR_COMPONENTS_SOCKETS_FOLDER";
/// The variable the component SDKs (and the Kubernetes injector) read instead.
const SDK_FOLDER_VARIABLE: &str = "DAPR_COMPONENT_SOCKETS_FOLDER";
/// daprd's default folder.
const DEFAULT_FOLDER: &str = "/tmp/dapr-components-sockets";
/// The socket's name: daprd registers it as `pubsub.jetstream-wasm`.
const SOCKET_NAME: &str = "jetstream-wasm.sock";

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The socket to listen on. Default: `jetstream-wasm.sock` in $DAPR_COMPONENTS_SOCKETS_FOLDER,
    /// else $DAPR_COMPONENT_SOCKETS_FOLDER, else /tmp/dapr-components-sockets (created if
    /// missing); daprd then knows the component as `pubsub.jetstream-wasm`.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The socket file's permissions, in octal. The default lets a daprd running as
    /// another user (as in Kubernetes) connect, as Dapr's component SDKs do; restrict it
    /// when daprd runs as the same user or group.
    #[arg(long, value_name = "MODE", default_value = "666", value_parser = parse_mode)]
    socket_mode: u32,
    /// Loads this component instead of the embedded one.
    #[arg(long, value_name = "PATH")]
    wasm: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    metrics: MetricsArgs,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("expected an octal mode such as 660, got {text:?}"))
}

/// The socket path: the flag, or the name in daprd's folder (`variable` reads the
/// environment).
fn socket_path(
    flag: Option<PathBuf>,
    variable: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> PathBuf {
    flag.unwrap_or_else(|| {
        let folder = [DAPRD_FOLDER_VARIABLE, SDK_FOLDER_VARIABLE]
            .iter()
            .find_map(|name| variable(name).filter(|value| !value.is_empty()))
            .map_or_else(|| PathBuf::from(DEFAULT_FOLDER), PathBuf::from);
        folder.join(SOCKET_NAME)
    })
}

/// Makes way for a new socket at `path`: a stale socket (nothing listening) is removed;
/// a live one, or a file that is not a socket, is refused.
fn clear_stale_socket(path: &Path) -> Result<(), Failure> {
    let Ok(existing) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !existing.file_type().is_socket() {
        return Err(Failure::Usage(format!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        )));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(Failure::Failed(format!(
            "another process is serving on {}; stop it or choose another --socket",
            path.display()
        ))),
        Err(_) => std::fs::remove_file(path).map_err(|err| {
            Failure::Failed(format!(
                "cannot remove the stale socket {}: {err}",
                path.display()
            ))
        }),
    }
}

/// Removes the socket when the command ends, however it ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(crate) async fn run(args: ServeArgs) -> Result<(), Failure> {
    let mut signals = ShutdownSignals::install();
    let path = socket_path(args.socket, |name| std::env::var_os(name));
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|err| {
            Failure::Failed(format!(
                "cannot create the folder {}: {err}",
                folder.display()
            ))
        })?;
    }
    // Checked before the runtime compiles the component, so a second `serve` fails fast.
    clear_stale_socket(&path)?;
    let recorder = args.metrics.install()?;
    let runtime = args.sandbox.builder(args.wasm.as_deref(), &Vec::new())?;
    let runtime = runtime
        .build()
        .map_err(|err| Failure::Usage(err.to_string()))?;
    if let Some(recorder) = recorder {
        recorder.serve(runtime.clone()).await?;
    }
    let server = Server::new(runtime);
    // Each Component YAML's own servers and files, unless the flags fix them for all.
    let server = if args.sandbox.is_default() {
        let sandbox = args.sandbox.clone();
        server.policy_per_instance(Arc::new(move |metadata| {
            sandbox
                .policy(metadata)
                .map_err(|failure| failure.message().to_string())
        }))
    } else {
        server
    };
    clear_stale_socket(&path)?;
    let listener = tokio::net::UnixListener::bind(&path)
        .map_err(|err| Failure::Failed(format!("cannot listen on {}: {err}", path.display())))?;
    let socket = SocketFile(path);
    std::fs::set_permissions(&socket.0, std::fs::Permissions::from_mode(args.socket_mode))
        .map_err(|err| {
            Failure::Failed(format!(
                "cannot set the permissions of {}: {err}",
                socket.0.display()
            ))
        })?;
    eprintln!(
        "serving {PUBSUB_SERVICE} and gRPC reflection (v1alpha, v1) on {}",
        socket.0.display()
    );
    server
        .serve(listener, async move { signals.received().await })
        .await?;
    drop(socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_is_in_daprds_folder_then_the_sdks_then_the_default() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| std::ffi::OsString::from(value))
            }
        };
        let both = env(&[
            ("DAPR_COMPONENTS_SOCKETS_FOLDER", "/daprd"),
            ("DAPR_COMPONENT_SOCKETS_FOLDER", "/sdk"),
        ]);
        assert_eq!(
            socket_path(None, both),
            PathBuf::from("/daprd/jetstream-wasm.sock")
        );
        let sdk = env(&[
            ("DAPR_COMPONENTS_SOCKETS_FOLDER", ""),
            ("DAPR_COMPONENT_SOCKETS_FOLDER", "/sdk"),
        ]);
        assert_eq!(
            socket_path(None, sdk),
            PathBuf::from("/sdk/jetstream-wasm.sock")
        );
        assert_eq!(
            socket_path(None, env(&[])),
            PathBuf::from("/tmp/dapr-components-sockets/jetstream-wasm.sock")
        );
        let flag = Some(PathBuf::from("/elsewhere/x.sock"));
        assert_eq!(socket_path(flag, both), PathBuf::from("/elsewhere/x.sock"));
    }

    #[test]
    fn modes_are_octal_and_at_most_777() {
        assert_eq!(parse_mode("666"), Ok(0o666));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert!(parse_mode("888").is_err());
        assert!(parse_mode("1777").is_err());
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        match clear_stale_socket(&path) {
            Err(Failure::Failed(text)) => assert!(text.contains("another process is serving")),
            _ => panic!("a live socket was not refused"),
        }
        drop(live);
        clear_stale_socket(&path).unwrap();
        assert!(!path.exists());
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(clear_stale_socket(&path), Err(Failure::Usage(_))));
    }
}
